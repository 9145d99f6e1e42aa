"""Built-in profile templates (design §1): the starting points a customer picks from."""

from __future__ import annotations

from services.api.models import TemplateName, TemplateOut
from shared.domain import Profile

_SUCCESS = {
    "name": "Erfolg",
    "language": "de",
    "criteria": [
        {
            "key": "success",
            "label": "Gespräch erfolgreich",
            "prompt": {
                "text": "War das Gespräch erfolgreich? Eins für ja, zwei für nein.",
                "language": "de",
            },
            "input": {
                "type": "code",
                "code_map": {
                    "name": "Erfolg",
                    "entries": [
                        {"code": "1", "label": "ERFOLGREICH", "value": 1, "success": True},
                        {"code": "2", "label": "NICHT ERFOLGREICH", "value": 0, "success": False},
                    ],
                },
            },
            "tries": 3,
            "timeout_ms": 5000,
            "aggregations": ["count", "error_rate", "success_rate", "distribution"],
        }
    ],
}

_GRADES = ["sehr gut", "gut", "befriedigend", "ausreichend", "mangelhaft", "ungenügend"]

_SCHOOL_GRADE = {
    "name": "Schulnote",
    "language": "de",
    "criteria": [
        {
            "key": "grade",
            "label": "Note",
            "prompt": {
                "text": "Bitte bewerten Sie das Gespräch mit einer Schulnote von eins bis sechs.",
                "language": "de",
            },
            "input": {
                "type": "code",
                "code_map": {
                    "name": "Schulnoten",
                    # Grades 1-4 pass in the German system, so they count as a success.
                    "entries": [
                        {"code": str(n), "label": label, "value": n, "success": n <= 4}
                        for n, label in enumerate(_GRADES, start=1)
                    ],
                },
            },
            "tries": 3,
            "timeout_ms": 5000,
            "aggregations": ["count", "avg", "min", "max", "error_rate", "distribution"],
        }
    ],
}

_ORDER_VALUE = {
    "name": "Auftragswert",
    "language": "de",
    "criteria": [
        {
            "key": "order_value",
            "label": "Auftragswert (EUR)",
            "prompt": {
                "text": "Bitte geben Sie den Auftragswert in Euro ein und beenden Sie mit Raute.",
                "language": "de",
            },
            "input": {"type": "number", "min_digits": 1, "max_digits": 9, "terminator": "#"},
            "tries": 3,
            "timeout_ms": 10000,
            "aggregations": ["count", "sum", "max", "avg", "error_rate"],
        }
    ],
}

TEMPLATES: dict[TemplateName, TemplateOut] = {
    "success": TemplateOut(
        name="success",
        title="Erfolg",
        description="Was the call successful? 1 = ERFOLGREICH, 2 = NICHT ERFOLGREICH",
        profile=Profile.model_validate(_SUCCESS),
    ),
    "school_grade": TemplateOut(
        name="school_grade",
        title="Schulnote",
        description="Grade the call 1 (sehr gut) to 6 (ungenügend); 1-4 count as success",
        profile=Profile.model_validate(_SCHOOL_GRADE),
    ),
    "order_value": TemplateOut(
        name="order_value",
        title="Auftragswert",
        description="Order value in euros, ended by #; summed and maximised",
        profile=Profile.model_validate(_ORDER_VALUE),
    ),
}


def profile_from_template(name: TemplateName, title: str | None = None) -> Profile:
    base = TEMPLATES[name].profile
    return base.model_copy(update={"name": title} if title else {}, deep=True)
