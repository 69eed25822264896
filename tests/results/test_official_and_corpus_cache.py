"""Store-backed evaluation with the real MiniLM: the corpus cache under a forced re-evaluation, and the
`kalm evaluate` contract for official mteb task names offline (one-line errors, local results kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from kalm.results import ResultsStore, evaluate_with_store
from tests.conftest import require_shared
from tests.evaluation.conftest import EVAL_ROOT, subsample_task
from tests.results.conftest import CountingEmbedder


class TextCounter(CountingEmbedder):
    """The real embedder, remembering every text it encoded."""

    texts: ClassVar[list[str]] = []

    @property
    def path(self) -> Path:
        return self.inner.path

    @property
    def max_length(self) -> int | None:
        return self.inner.max_length

    def encode(self, texts: Any, *, batch_size: int = 32) -> Any:
        type(self).texts.extend(texts)
        return super().encode(texts, batch_size=batch_size)


@pytest.fixture(scope="module")
def retrieval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SciFact cut to 8 queries over their relevant documents plus 24 others (MiniLM encodes it in seconds)."""
    require_shared(EVAL_ROOT)
    task = tmp_path_factory.mktemp("retrieval") / "SciFact"
    subsample_task(EVAL_ROOT / "SciFact", task)
    queries = (task / "queries.jsonl").read_text().splitlines()[:8]
    qids = {json.loads(q)["_id"] for q in queries}
    header, *qrels = (task / "qrels" / "test.tsv").read_text().splitlines()
    qrels = [line for line in qrels if line.split("\t")[0] in qids]
    relevant = {line.split("\t")[1] for line in qrels}
    corpus = [json.loads(d) for d in (task / "corpus.jsonl").read_text().splitlines()]
    kept = [d for d in corpus if d["_id"] in relevant] + [d for d in corpus if d["_id"] not in relevant][:24]
    (task / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (task / "qrels" / "test.tsv").write_text("\n".join([header, *qrels]) + "\n")
    (task / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in kept))
    return task.parent


def test_fresh_store_reevaluation_encodes_the_corpus_once(
    minilm_path: Path, retrieval_dir: Path, tmp_path: Path, private_state_dir: Path
) -> None:
    TextCounter.reset()
    TextCounter.texts = []
    corpus = (retrieval_dir / "SciFact" / "corpus.jsonl").read_text().splitlines()
    queries = (retrieval_dir / "SciFact" / "queries.jsonl").read_text().splitlines()

    def run(store: str) -> Any:
        return evaluate_with_store(
            minilm_path,
            retrieval_dir,
            tmp_path / store,
            store=tmp_path / f"{store}.duckdb",
            embedder_factory=TextCounter,
        )

    first = run("one")
    assert first.evaluated == ["SciFact"] and len(TextCounter.texts) == len(corpus) + len(queries)
    second = run("two")  # a fresh store: the task is evaluated again, but its corpus is read back
    assert second.evaluated == ["SciFact"] and TextCounter.constructed == 2
    assert len(TextCounter.texts) == len(corpus) + 2 * len(queries)
    assert second.scores == first.scores
    assert ResultsStore(tmp_path / "two.duckdb").query("SELECT task FROM evaluations") == [("SciFact",)]
    cached = list((private_state_dir / "embeddings" / "eval").glob("*.npy"))  # the default location
    assert len(cached) == 1

    TextCounter.texts = []
    run_off = evaluate_with_store(
        minilm_path,
        retrieval_dir,
        tmp_path / "three",
        store=tmp_path / "three.duckdb",
        embedder_factory=TextCounter,
        embedding_cache=False,
    )
    assert len(TextCounter.texts) == len(corpus) + len(queries)
    assert run_off.scores == first.scores


def _evaluate(args: list[str], tmp_path: Path) -> Any:
    from kalm.cli import app

    return CliRunner().invoke(app, ["evaluate", *args, "--runs-dir", str(tmp_path / "runs")])


def test_cli_unknown_name_is_one_line(minilm_path: Path, tmp_path: Path) -> None:
    result = _evaluate(["--model", str(minilm_path), "--task", "STSBenchmrk"], tmp_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1, result.output
    assert "unknown task 'STSBenchmrk' (close matches: STSBenchmark" in result.output


@pytest.mark.usefixtures("prefect_harness")  # the command runs a flow
def test_cli_offline_official_task_fails_after_recording_local_ones(
    minilm_path: Path, tiny_tasks_dir: Path, tmp_path: Path, private_state_dir: Path
) -> None:
    import datasets

    store = tmp_path / "results.duckdb"
    args = ["--model", str(minilm_path), "--tasks-dir", str(tiny_tasks_dir), "--task", "MSRP"]
    args += ["--task", "NFCorpus", "--store", str(store), "--output", str(tmp_path / "out")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")
        result = _evaluate(args, tmp_path)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: mteb task 'NFCorpus': data mteb/nfcorpus@")
    assert "could not be downloaded" in last and "HF_HUB_OFFLINE" in last
    # the local task finished before the official one failed, and its score was kept
    assert ResultsStore(store).query("SELECT task FROM evaluations") == [("MSRP",)]


def test_official_task_runs_through_the_store_with_its_own_prompt_and_revision(
    retrieval_dir: Path, tmp_path: Path
) -> None:
    """NFCorpus as mteb defines it, with local SciFact rows standing in for the hub data (offline)."""
    from kalm.evaluation import load_local_tasks, resolve_official_tasks
    from kalm.hashing import hash_directory
    from tests.evaluation.conftest import RecordingEmbedder

    (local,) = load_local_tasks(retrieval_dir, ["SciFact"])
    local.load_data()
    (task,) = resolve_official_tasks(tasks=["NFCorpus"])
    task.dataset, task.data_loaded = local.dataset, True  # what load_data would have read from the hub
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"stand-in")
    recorder = RecordingEmbedder()
    recorder.revision = hash_directory(model)
    store = ResultsStore(tmp_path / "results.duckdb")

    def run() -> Any:
        return evaluate_with_store(
            model,
            None,
            tmp_path / "out",
            store=store,
            official_tasks=[task],
            embedder_factory=lambda path, name=None: recorder,
            embedding_cache=tmp_path / "cache",
        )

    first = run()
    assert first.evaluated == ["NFCorpus"] and not task.data_loaded  # released after the run
    score = first.scores["NFCorpus"]
    assert (score.task_type, score.main_score_name, score.split, score.languages) == (
        "Retrieval",
        "ndcg_at_10",
        "test",
        ["eng"],
    )
    prefix = f"Instruct: {task.metadata.prompt['query']} \n Query: "
    queries = [t for t in recorder.texts if t.startswith("Instruct: ")]
    assert len(queries) == len((retrieval_dir / "SciFact" / "queries.jsonl").read_text().splitlines())
    assert all(q.startswith(prefix) for q in queries)
    revision = task.metadata.dataset["revision"]
    assert store.query("SELECT task, task_revision FROM evaluations") == [("NFCorpus", revision)]
    n_encoded = len(recorder.texts)
    second = run()  # read back from the store: no data, no model, no encoding
    assert second.cached == ["NFCorpus"] and len(recorder.texts) == n_encoded
    assert second.scores == first.scores
