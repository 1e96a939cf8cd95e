"""The evaluation suite: QA cases over the knowledge base, retrieval sets, metrics, reports and gates.

`coopbot eval` runs the same `Assistant` and `Retriever` that users get, so what it measures is
what they see. Cases and judgements live in `cases`, the QA run and its metrics in `qa`, retrieval
metrics in `retrieval`, reports in `report` and the regression gate in `gate`.
"""

from coopbot.evals.cases import CaseError, GoldQuote, QACase, covers, load_qa_cases, point_found

__all__ = ["CaseError", "GoldQuote", "QACase", "covers", "load_qa_cases", "point_found"]
