"""Bytes of a text file -> str: BOM, strict UTF-8, then the most plausible Chinese legacy codec.

Chinese files arrive as UTF-8, GB18030/GBK or Big5 with no label, and the legacy codecs decode each
other's bytes without error into garbage, so the choice is made by scoring how Chinese the result
looks. Every text-based reader (.txt, .md, .html, .csv) decodes through `decode`.
"""

from __future__ import annotations

import codecs
import functools
import unicodedata
from collections.abc import Iterable

from coopbot.ingest.loaders.registry import LoadError

# The 500 most frequent characters of modern Chinese (Jun Da's character frequency list; its first
# 100 are also charset_normalizer's), then their traditional forms. A correct decoding of Chinese
# hits these about three times in four; bytes decoded with the wrong codec rarely do.
_COMMON_HANZI = frozenset(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后"
    "作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因"
    "只从想实日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应"
    "战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿"
    "原东声提立及比员解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太"
    "量再感建务做接必场件计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界"
    "达光放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今"
    "切院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存"
    "未远叫台单影具罗字爱击流备兵连调深商算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官"
    "火断精满支视消越器容照须九增研写称企八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历"
    "首医局突专费号尽另周较注语仅考落青随选列"
    # their traditional forms (OpenCC s2tw)
    "這個們來為國說時會對於著過發後裡種經麼學現當沒動還進樣開從實軍無與長機關點業將兩間問並應戰頭體見"
    "產話內給門兒東聲員論處義幾認條氣題爾別變總電數報結務場計資許統區隊決馬書則聽卻達強難權設記類據邊"
    "張該規萬覺術領確傳師觀讓識帶導爭運飛風幹聯組濟車親極辦議證轉準遠臺單羅愛擊備連調質團價黨華級離況"
    "亞請際約復線斷滿視須寫稱嗎輕農裝廣顯標談圖歷醫專費號盡較語僅隨選複乾"
)
_CJK_PUNCTUATION = frozenset("，。、；：？！“”‘’（）《》〈〉【】〔〕「」『』—…·　")
_CJK_CODECS = ("gb18030", "big5", "cp950", "big5hkscs")  # ties go to the earlier codec
_CHINESE_CODECS = frozenset({*_CJK_CODECS, "gb2312", "gbk", "hz"})
_PLAUSIBLE = 1.5  # mean score above which a CJK decoding is trusted without asking charset_normalizer


def decode(data: bytes, name: str) -> tuple[str, str]:
    """Decode a text file: BOM, then strict UTF-8, then the most plausible Chinese legacy codec.

    Trying codecs in order is not enough: Big5 bytes usually also decode as GB18030 (and vice versa)
    without error, into rare or garbled characters. So every Chinese codec that decodes is scored by
    how plausible its characters are, and charset_normalizer is the fallback for anything else.
    """
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[len(codecs.BOM_UTF8) :], "utf-8", name), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", name), "utf-16"
    if b"\x00" in data:
        raise LoadError(
            f"{name}: looks binary, not text (it contains NUL bytes). If it is a document, export it as "
            "UTF-8 text, or give it its real suffix (.pdf, .docx)."
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass

    best_score, best = 0.0, None
    for codec in _CJK_CODECS:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        score = _plausibility(text)
        if best is None or score > best_score:  # strictly greater: ties keep the earlier codec
            best_score, best = score, (text, codec)
    if best is not None and best_score >= _PLAUSIBLE:
        return best

    # Not convincingly Chinese: maybe another language's legacy encoding (Shift_JIS, EUC-KR, cp1252).
    guess = _charset_normalizer_guess(data)
    if guess is not None and guess[1] not in _CHINESE_CODECS:
        return guess
    if best is not None and best_score > 0:
        return best
    raise LoadError(
        f"{name}: cannot tell the text encoding (it is not UTF-8, GB18030/GBK or Big5); "
        "open it in an editor and save it as UTF-8."
    )


def _strict(data: bytes, codec: str, name: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"{name}: starts with a {codec.upper()} byte-order mark but is not valid {codec.upper()} "
            f"(byte {exc.start}); open it in an editor and save it as UTF-8."
        ) from exc


def _charset_normalizer_guess(data: bytes) -> tuple[str, str] | None:
    from charset_normalizer import from_bytes

    match = from_bytes(data).best()
    return None if match is None else (str(match), str(match.encoding).replace("_", "-"))


@functools.cache
def _known_hanzi() -> frozenset[str]:
    """GB2312 level-1 and Big5 common characters: ordinary text, though not among the most frequent."""
    gb2312 = _decode_grid("gb2312", range(0xB0, 0xD8), range(0xA1, 0xFF))
    big5 = _decode_grid("big5", range(0xA4, 0xC7), [*range(0x40, 0x7F), *range(0xA1, 0xFF)])
    return frozenset(gb2312 | big5)


def _decode_grid(codec: str, leads: Iterable[int], trails: Iterable[int]) -> set[str]:
    trail_bytes = list(trails)
    chars = set()
    for lead in leads:
        for trail in trail_bytes:
            try:
                chars.add(bytes((lead, trail)).decode(codec))
            except UnicodeDecodeError:
                continue
    return chars


def _plausibility(text: str) -> float:
    """Mean score of the non-ASCII characters: high for real Chinese, low for mis-decoded bytes.

    Frequent characters and CJK punctuation score 3, other everyday characters 1, rare ideographs 0,
    and what mis-decoding produces (private-use, kana, box drawing, Cyrillic, ...) -3.
    """
    known = _known_hanzi()
    total = count = 0
    for ch in text:
        if ch.isascii():
            continue
        count += 1
        if ch in _COMMON_HANZI or ch in _CJK_PUNCTUATION or "\uff01" <= ch <= "\uff5e":
            total += 3
        elif ch in known:
            total += 1
        elif not (unicodedata.category(ch) == "Lo" and "\u3400" <= ch <= "\u9fff"):
            total -= 3
    return total / count if count else 0.0
