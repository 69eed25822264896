"""Reading and validating one local task directory (task.json + data files).

The layout is the one described in `shared/datasets/README.md`. Everything is checked up front, before any
model runs, and every error names the task directory and the offending file or field: a typo in a task.json
should cost seconds, not a half-finished evaluation run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK_TYPES: tuple[str, ...] = (
    "STS",
    "Retrieval",
    "Classification",
    "Clustering",
    "PairClassification",
    "Reranking",
)
REQUIRED_FIELDS: tuple[str, ...] = ("name", "type", "languages", "main_score", "split", "instruction")

# task.json uses short metric names where mteb's retrieval evaluator reports cut-off variants; candidate lists
# of the local reranking tasks are far shorter than 1000, so MAP@1000 is plain MAP.
MAIN_SCORE_ALIASES: dict[str, str] = {"map": "map_at_1000", "mrr": "mrr_at_1000"}

# ISO 639-3 -> the script mteb expects in "lang-Script" codes, for the languages the datasets use.
DEFAULT_SCRIPTS: dict[str, str] = {
    "eng": "Latn",
    "cmn": "Hans",
    "zho": "Hans",
    "yue": "Hant",
    "deu": "Latn",
    "fra": "Latn",
    "spa": "Latn",
    "jpn": "Jpan",
    "kor": "Kore",
    "rus": "Cyrl",
}


def required_files(task_type: str, split: str) -> tuple[str, ...]:
    """Data files (relative to the task dir) each task type needs, per the shared datasets README."""
    files = {
        "STS": (f"{split}.jsonl",),
        "Retrieval": ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"),
        "Classification": ("train.jsonl", f"{split}.jsonl"),
        "Clustering": (f"{split}.jsonl",),
        "PairClassification": (f"{split}.jsonl",),
        "Reranking": (f"{split}.jsonl",),
    }
    return files[task_type]


@dataclass(frozen=True)
class LocalTaskSpec:
    """The validated content of one task.json, plus where its data lives."""

    task_dir: Path
    name: str
    type: str
    languages: tuple[str, ...]
    main_score: str
    split: str
    instruction: str
    min_score: float | None = None
    max_score: float | None = None
    counterpart: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def mteb_main_score(self) -> str:
        """The key of the main score in mteb's score dicts."""
        return MAIN_SCORE_ALIASES.get(self.main_score, self.main_score)

    @property
    def eval_langs(self) -> list[str]:
        """`languages` as mteb "lang-Script" codes."""
        return [_lang_script(self, lang) for lang in self.languages]

    def path(self, relative: str) -> Path:
        """Absolute path of one of this task's data files."""
        return self.task_dir / relative


class TaskSpecError(ValueError):
    """A task directory that cannot be evaluated; the message names the task dir and the file or field."""


def _fail(task_dir: Path, where: str, problem: str) -> TaskSpecError:
    return TaskSpecError(f"local task {task_dir.name!r} ({task_dir}): {where}: {problem}")


def _lang_script(spec: LocalTaskSpec, lang: str) -> str:
    if "-" in lang:
        return lang
    if lang not in DEFAULT_SCRIPTS:
        raise _fail(
            spec.task_dir,
            "task.json field 'languages'",
            f"no known script for language {lang!r}; write it as 'lang-Script' (e.g. 'eng-Latn')",
        )
    return f"{lang}-{DEFAULT_SCRIPTS[lang]}"


def read_task_spec(task_dir: Path) -> LocalTaskSpec:
    """Parse and validate `task_dir/task.json`, and check the data files for its type exist."""
    task_dir = Path(task_dir)
    meta_path = task_dir / "task.json"
    if not meta_path.is_file():
        raise _fail(task_dir, "file 'task.json'", "missing")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise _fail(task_dir, "file 'task.json'", f"invalid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise _fail(task_dir, "file 'task.json'", "top level must be a JSON object")

    for key in REQUIRED_FIELDS:
        if key not in raw or raw[key] in (None, "", []):
            raise _fail(task_dir, f"task.json field {key!r}", "missing or empty")
    for key in ("name", "type", "main_score", "split", "instruction"):
        if not isinstance(raw[key], str):
            raise _fail(task_dir, f"task.json field {key!r}", f"must be a string, got {raw[key]!r}")
    if raw["type"] not in TASK_TYPES:
        raise _fail(
            task_dir,
            "task.json field 'type'",
            f"unknown task type {raw['type']!r}; expected one of {', '.join(TASK_TYPES)}",
        )
    languages = raw["languages"]
    if not isinstance(languages, list) or not all(isinstance(x, str) and x for x in languages):
        raise _fail(
            task_dir, "task.json field 'languages'", f"must be a list of language codes, got {languages!r}"
        )

    min_score = max_score = None
    if raw["type"] == "STS":
        for key in ("min_score", "max_score"):
            if not isinstance(raw.get(key), int | float) or isinstance(raw.get(key), bool):
                raise _fail(task_dir, f"task.json field {key!r}", "STS tasks need a numeric value")
        min_score, max_score = float(raw["min_score"]), float(raw["max_score"])
        if max_score <= min_score:
            raise _fail(task_dir, "task.json field 'max_score'", "must be greater than 'min_score'")

    counterpart = raw.get("mteb_counterpart")
    if counterpart is not None and (not isinstance(counterpart, str) or not counterpart):
        raise _fail(
            task_dir,
            "task.json field 'mteb_counterpart'",
            f"must be an mteb task name or null, got {counterpart!r}",
        )

    spec = LocalTaskSpec(
        task_dir=task_dir,
        name=raw["name"],
        type=raw["type"],
        languages=tuple(languages),
        main_score=raw["main_score"],
        split=raw["split"],
        instruction=raw["instruction"],
        min_score=min_score,
        max_score=max_score,
        counterpart=counterpart,
        raw=raw,
    )
    _ = spec.eval_langs  # validates the language codes now rather than at evaluation time
    for rel in required_files(spec.type, spec.split):
        if not spec.path(rel).is_file():
            raise _fail(task_dir, f"file {rel!r}", f"missing (required for {spec.type} tasks)")
    return spec


def read_jsonl(spec: LocalTaskSpec, relative: str, required_keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of a .jsonl data file, each checked for `required_keys`."""
    rows: list[dict[str, Any]] = []
    with spec.path(relative).open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise _fail(
                    spec.task_dir, f"file {relative!r} line {line_no}", f"invalid JSON ({err})"
                ) from err
            missing = [key for key in required_keys if key not in row]
            if missing:
                raise _fail(spec.task_dir, f"file {relative!r} line {line_no}", f"missing field(s) {missing}")
            rows.append(row)
    if not rows:
        raise _fail(spec.task_dir, f"file {relative!r}", "no rows")
    return rows


def read_qrels(spec: LocalTaskSpec, relative: str) -> dict[str, dict[str, int]]:
    """A BEIR qrels TSV (header `query-id, corpus-id, score`) as {query_id: {doc_id: score}}."""
    qrels: dict[str, dict[str, int]] = {}
    with spec.path(relative).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        expected = {"query-id", "corpus-id", "score"}
        if reader.fieldnames is None or not expected <= set(reader.fieldnames):
            raise _fail(spec.task_dir, f"file {relative!r}", f"header must contain {sorted(expected)}")
        for line_no, row in enumerate(reader, start=2):
            try:
                score = int(row["score"])
            except (TypeError, ValueError) as err:
                raise _fail(
                    spec.task_dir, f"file {relative!r} line {line_no}", "score is not an integer"
                ) from err
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = score
    if not qrels:
        raise _fail(spec.task_dir, f"file {relative!r}", "no rows")
    return qrels


def eval_texts(spec: LocalTaskSpec, include_corpus: bool = False) -> list[str]:
    """Every text a model is scored on in this task, in file order (what decontamination must keep out of
    training): STS / PairClassification ``sentence1`` and ``sentence2``; Classification / Clustering ``text``
    of the evaluation split (a Classification task's ``train.jsonl`` trains the evaluation classifier and is
    not included); Reranking ``query``, positives and negatives; Retrieval queries, and with
    ``include_corpus`` the corpus titles and texts (one collection shared by every split, so off by default)."""
    split_file = f"{spec.split}.jsonl"
    texts: list[str] = []
    if spec.type in ("STS", "PairClassification"):
        for r in read_jsonl(spec, split_file, ("sentence1", "sentence2")):
            texts += [r["sentence1"], r["sentence2"]]
    elif spec.type in ("Classification", "Clustering"):
        texts = [r["text"] for r in read_jsonl(spec, split_file, ("text",))]
    elif spec.type == "Reranking":
        for r in read_jsonl(spec, split_file, ("query", "positive", "negative")):
            texts += [r["query"], *r["positive"], *r["negative"]]
    else:  # Retrieval (read_task_spec admits only TASK_TYPES)
        texts = [r["text"] for r in read_jsonl(spec, "queries.jsonl", ("text",))]
        if include_corpus:
            for r in read_jsonl(spec, "corpus.jsonl", ("text",)):
                texts += [t for t in (r.get("title") or "", r["text"]) if t]
    return texts


def select_task_specs(tasks_dir: Path, names: Sequence[str] | None = None) -> list[LocalTaskSpec]:
    """Every sub-directory of ``tasks_dir`` with a task.json, sorted by task name, or ``names`` in the order
    given. Duplicate task names and unknown requested names are errors (never silently fewer tasks)."""
    tasks_dir = Path(tasks_dir)
    if not tasks_dir.is_dir():
        raise ValueError(f"tasks directory {tasks_dir} does not exist")
    specs: dict[str, LocalTaskSpec] = {}
    for sub in sorted(p for p in tasks_dir.iterdir() if p.is_dir() and (p / "task.json").is_file()):
        spec = read_task_spec(sub)
        if spec.name in specs:
            raise ValueError(
                f"local task {sub.name!r} ({sub}): task.json field 'name': {spec.name!r} is also used by "
                f"{specs[spec.name].task_dir}"
            )
        specs[spec.name] = spec
    if names is None:
        return [specs[n] for n in sorted(specs)]
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(
            f"unknown task name(s) {unknown} in {tasks_dir}; available: {', '.join(sorted(specs))}"
        )
    return [specs[n] for n in dict.fromkeys(names)]
