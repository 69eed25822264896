"""data_catalog/kalm_v2.yaml: the paper's inventory, validated statically (no hub is reachable here)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml

from data_catalog.catalog import load_catalog
from data_catalog.schema import Stage, TaskType
from data_catalog.specs import HuggingFaceLoader, as_list

CATALOG = Path(__file__).resolve().parents[2] / "data_catalog" / "kalm_v2.yaml"
PRETRAIN_FOLDERS = {
    "Amazon-Reviews-2023", "THUCNews", "Zhihu-KOL", "big_patent", "codesearchnet", "csl", "dbpedia-entity",
    "falcon", "multilingual_cc_news", "newsroom", "nllb_400M", "nllb_eng-zho_v0", "paq", "reddit", "s2orc",
    "skypile", "stackexchange", "stackoverflow", "swim-ir-cross-lingual", "swim-ir-monolingual",
    "webtext2019zh", "wikipedia", "wudao", "xP3", "xlsum",
}  # fmt: skip
NAMED_IN_ISSUE = [
    "msmarco", "nq", "hotpotqa", "fever", "fiqa", "nfcorpus", "scifact", "trec_covid", "dbpedia",
    "quora_retrieval", "miracl_zh", "mrtydi_english", "esci", "codefeedback_st", "yahoo_answers_topics",
    "arxiv_clustering_p2p", "biorxiv_clustering_s2s", "medrxiv_clustering_p2p", "reddit_clustering",
    "stackexchange_clustering", "twentynewsgroups_clustering", "banking77", "amazon_polarity",
    "amazon_reviews_en", "amazon_counterfactual", "imdb", "emotion", "tweet_sentiment", "toxic_conversations",
    "pawsx_en", "multilingual_sentiment", "massive_intent_en", "massive_scenario_en", "mtop_domain",
    "mtop_intent", "atec", "bq", "lcqmc", "cqadupstack", "dureader", "t2ranking", "cmedqa", "snli",
    "multinli", "squad", "triviaqa", "eli5", "paq", "pubmedqa",
]  # fmt: skip

LEAKY = {"trec_covid", "dbpedia", "arguana", "sprint_duplicates", "qbqtc", "ocnli"}  # read MTEB eval splits


def test_validates_with_enough_categories():
    sources = load_catalog(CATALOG).catalog.sources
    pretrain = {s.category for s in sources if s.stage == Stage.PRETRAIN}
    finetune = {s.category for s in sources if s.stage == Stage.FINETUNE}
    assert len(pretrain) >= 20 and len(finetune) >= 100
    names = Counter(s.name for s in sources)
    assert not [n for n, c in names.items() if c > 1]


def test_pretrain_is_the_25_released_folders():
    sources = [s for s in load_catalog(CATALOG).catalog.sources if s.stage == Stage.PRETRAIN]
    folders = set()
    for source in sources:
        assert isinstance(source.loader, HuggingFaceLoader) and source.loader.streaming
        assert source.loader.path == "HIT-TMG/KaLM-embedding-pretrain-data"
        folders |= {f.split("/")[0] for f in source.loader.data_files or []}
    assert folders == PRETRAIN_FOLDERS and len(sources) == 25


def test_every_finetune_category_has_instruction_and_task_type():
    sources = [s for s in load_catalog(CATALOG).catalog.sources if s.stage == Stage.FINETUNE]
    for source in sources:
        assert len(source.instruction.split()) >= 3, source.name
        assert source.task_type in TaskType
        assert isinstance(source.loader, HuggingFaceLoader) and "/" in source.loader.path, source.name
    by_type = Counter(s.task_type for s in sources)
    for task_type in ("retrieval", "sts", "pair_classification", "classification", "clustering"):
        assert by_type[TaskType(task_type)] >= 3, task_type
    assert all(s.transform == "exemplar" for s in sources if s.task_type in ("classification", "clustering"))


def test_datasets_the_issue_names_are_declared():
    names = {s.name for s in load_catalog(CATALOG, include_disabled=True).catalog.sources}
    assert [n for n in NAMED_IN_ISSUE if n not in names] == []
    contract = [n for n in names if n.startswith("contractnli_")]
    assert len(contract) == 14


def test_sources_reading_eval_splits_are_off_by_default():
    every = {s.name: s for s in load_catalog(CATALOG, include_disabled=True).catalog.sources}
    enabled = {s.name for s in load_catalog(CATALOG).catalog.sources}
    for name in LEAKY:
        assert not every[name].enabled and every[name].note.startswith("Leakage:"), name
        assert name not in enabled
    assert set(every) - enabled >= LEAKY


def test_every_source_names_the_page_it_was_checked_against():
    for source in load_catalog(CATALOG, include_disabled=True).catalog.sources:
        assert source.checked is not None, source.name


def test_stackexchange_duplicates_uses_the_real_config_names():
    sources = {s.name: s for s in load_catalog(CATALOG).catalog.sources}
    configs = {sources[n].loader.config for n in ("stackexchange_dup_titles", "cqadupstack")}  # type: ignore[union-attr]
    assert configs == {"title-title-pair", "post-post-pair"}


def test_no_local_paths_and_revisions_documented():
    raw = yaml.safe_load(CATALOG.read_text())
    assert "revision" in CATALOG.read_text().split("sources:")[0]  # the header says why it is unpinned
    for source in raw["sources"]:
        loaders = [source["loader"], *(source.get("beir") or {}).values()]
        for loader in loaders:
            if isinstance(loader, dict):
                assert loader["kind"] == "huggingface", source["name"]
                assert not any(p.startswith(("/", "..")) for p in as_list(loader["path"]))
