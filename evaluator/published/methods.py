"""One method, one name: ``site/data/methods.json`` lists every method that appears in a source,
with the other names sources print for it and its publication year.

BTF's README prints its method as "BTF (Ours)" and M3DM's supplement as "PatchCore + FPFH";
CPMF's README prints BTF's FPFH baseline as "BTF (FPFH)". Every data row names its method by
one of these names, and the board shows the canonical one, so rows of one method and setting
from several sources become one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from evaluator.validation.parsing import load_json

METHODS_FILE = Path(__file__).resolve().parents[2] / "site" / "data" / "methods.json"


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    aliases: list[str] = Field(default_factory=list)
    year: int | None = Field(ge=1990, le=2100, description="Year of the method's first "
                             "publication; None where no source or venue gives it.")
    year_from: str = Field(description="Where the year comes from: a source's venue or time "
                           "column, or the paper's arXiv id (or why it is unknown).")
    paper_url: str | None = None


class MethodList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    methods: list[Method]


class UnknownMethod(ValueError):
    pass


@dataclass(frozen=True)
class Methods:
    by_name: dict[str, Method]

    def resolve(self, name: str) -> Method:
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownMethod(f"method {name!r} is not in {METHODS_FILE.name}: add it with "
                                "its year, or add the name to an existing method's aliases") \
                from None


def load_methods(path: Path = METHODS_FILE) -> Methods:
    return _load(str(path))


@lru_cache(maxsize=4)
def _load(path: str) -> Methods:
    data = MethodList.model_validate(load_json(Path(path).read_text(encoding="utf-8")))
    by_name: dict[str, Method] = {}
    for method in data.methods:
        for name in [method.name, *method.aliases]:
            if name in by_name:
                raise ValueError(f"{Path(path).name}: the name {name!r} is given to both "
                                 f"{by_name[name].name!r} and {method.name!r}")
            by_name[name] = method
    return Methods(by_name)
