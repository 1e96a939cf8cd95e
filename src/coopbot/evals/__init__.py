"""The evaluation suite: QA cases over the knowledge base, retrieval sets, metrics, reports and gates.

`coopbot eval` runs the same assistant users get (`build_assistant`) and the same `Retriever`, so what
it measures is what they see. Cases and judgements live in `cases`, the QA run and its metrics in `qa`,
retrieval sets and their metrics in `retrieval`, the answer core on external reading-comprehension sets in
`answerability`, reports in `report` and the regression gate in `gate`. A face of its own: the core never
imports it.
"""

from coopbot.evals.cases import CaseError, GoldQuote, QACase, covers, load_qa_cases, point_found

__all__ = ["CaseError", "GoldQuote", "QACase", "covers", "load_qa_cases", "point_found"]
