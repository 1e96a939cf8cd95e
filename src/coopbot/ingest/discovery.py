"""The files a folder holds, bounded to it: a link whose target lies outside the folder is never followed.

A knowledge folder is filled by people and tools (uploads, unpacked archives, synced copies), and one link
in it such as `passwd.txt -> /etc/passwd` would otherwise put any file the server can read into the index
and into answers. Links that stay inside are followed, each file and folder once, so an alias or a loop
indexes nothing twice.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from coopbot.schema import SkippedFile


def folder_files(folder: Path) -> tuple[list[Path], list[SkippedFile]]:
    """The visible files under `folder`, sorted, as paths under it; and the links left out, with the reason.

    Hidden names (".git", ".draft.md") are passed over at every depth. Links are followed after the
    folder's own tree, so a file reached both directly and through a link is listed under its own path.
    """
    root = folder.resolve()
    files: dict[Path, Path] = {}  # each file (resolved) -> the first path it was found at
    walked: set[Path] = set()  # folders (resolved) already listed
    links: deque[Path] = deque()
    skipped: list[SkippedFile] = []

    def walk(directory: Path) -> None:
        walked.add(directory.resolve())
        try:
            entries = sorted(directory.iterdir())
        except OSError as exc:
            skipped.append(
                SkippedFile(str(directory), f"cannot list this folder ({exc.strerror}); check its permissions")
            )
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                links.append(entry)
            elif entry.is_dir():
                if entry.resolve() not in walked:
                    walk(entry)
            elif entry.is_file():
                files.setdefault(entry.resolve(), entry)

    walk(folder)
    while links:
        link = links.popleft()
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: links that point at each other
            skipped.append(SkippedFile(str(link), "a link that leads nowhere (a missing target or a loop of links)"))
            continue
        if not target.is_relative_to(root):
            skipped.append(
                SkippedFile(
                    str(link),
                    f"a link to {target}, outside the folder {folder}: only what the folder holds is indexed; "
                    "copy the file into the folder if it belongs there",
                )
            )
        elif target.is_dir():
            if target not in walked:
                walk(link)
        elif target.is_file():
            files.setdefault(target, link)
    return sorted(files.values()), skipped
