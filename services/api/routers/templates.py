"""``/v1/templates``: the built-in starting points for profiles."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.dependencies import Reader
from services.api.models import TemplateList, TemplateName, TemplateOut
from services.api.problems import responses
from services.api.templates import TEMPLATES

router = APIRouter(prefix="/v1/templates", tags=["templates"])


@router.get("", response_model=TemplateList, responses=responses(401))
async def list_templates(who: Reader) -> TemplateList:
    return TemplateList(items=list(TEMPLATES.values()))


@router.get("/{name}", response_model=TemplateOut, responses=responses(401, 422))
async def get_template(name: TemplateName, who: Reader) -> TemplateOut:
    return TEMPLATES[name]
