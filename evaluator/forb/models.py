"""The models of FORB prediction lines. The validator parses every line with them and the
published JSON Schemas are generated from them, so the two cannot disagree."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_CANDIDATES = 100

Score = Annotated[float, Field(allow_inf_nan=False)]
ImagePath = Annotated[str, StringConstraints(min_length=1, max_length=300)]


def _check_ranked_list(ids: list, scores: list[float], ids_field: str, scores_field: str) -> None:
    """Rules shared by both formats: one score per candidate, candidates unique, scores
    non-increasing (best first), as FORB's thresholded metrics assume."""
    if len(ids) != len(scores):
        raise ValueError(f"{len(ids)} {ids_field} but {len(scores)} {scores_field}; give one "
                         "score per candidate")
    if len(set(ids)) != len(ids):
        seen: set = set()
        repeated = next(c for c in ids if c in seen or seen.add(c))
        raise ValueError(f"{ids_field}: {repeated!r} appears more than once")
    if not all(a >= b for a, b in zip(scores, scores[1:])):
        i = next(i for i in range(1, len(scores)) if scores[i] > scores[i - 1])
        raise ValueError(f"{scores_field} must be non-increasing (best first), but "
                         f"{scores_field}[{i}] = {scores[i]!r} is higher than "
                         f"{scores_field}[{i - 1}] = {scores[i - 1]!r}")


class ForbResultLine(BaseModel):
    """One line of FORB's own ``retrieval_results/<type>_<all|oods>.ndjson``.

    Extra keys that FORB's tools write (e.g. ``candidate_db_ids_before_reranking``) are ignored.
    """

    model_config = ConfigDict(strict=True, extra="ignore", title="FORB retrieval_results line")

    query_id: int = Field(ge=1, description="1-based query number within the object type, in "
                          "the order of <type>_query.ndjson.")
    candidate_db_ids: list[Annotated[int, Field(ge=0)]] = Field(
        max_length=MAX_CANDIDATES, json_schema_extra={"uniqueItems": True},
        description="Ranked candidates, best first: 0-based line numbers in "
                    "all_database_images.txt (for *_all files) or oods_database_images.txt "
                    "(for *_oods files).")
    global_scores: list[Score] = Field(
        max_length=MAX_CANDIDATES,
        description="One finite score per candidate, non-increasing.")

    @model_validator(mode="after")
    def _ranked(self) -> ForbResultLine:
        _check_ranked_list(self.candidate_db_ids, self.global_scores, "candidate_db_ids",
                           "global_scores")
        return self


class ForbPredictionLine(BaseModel):
    """One line of the canonical FORB predictions file (``predictions.ndjson[.gz]``): a query's
    ranked candidates in one database, named by image path."""

    model_config = ConfigDict(strict=True, extra="forbid", title="FORB prediction line")

    database: Literal["all", "oods"] = Field(
        description="'all': the full database (all_database_images.txt); 'oods': the database "
                    "without any ground-truth image (oods_database_images.txt).")
    query: ImagePath = Field(description="Query image path as in <type>_query.ndjson, e.g. "
                             "'logos/query/<uuid>.jpg'.")
    candidates: list[ImagePath] = Field(
        max_length=MAX_CANDIDATES, json_schema_extra={"uniqueItems": True},
        description="Ranked database image paths, best first.")
    scores: list[Score] = Field(max_length=MAX_CANDIDATES,
                                description="One finite score per candidate, non-increasing.")

    @model_validator(mode="after")
    def _ranked(self) -> ForbPredictionLine:
        _check_ranked_list(self.candidates, self.scores, "candidates", "scores")
        return self
