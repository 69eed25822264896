"""Texts read from mteb task objects (official benchmarks) equal the texts read from the task files (local
tasks), on every local task type: decontamination treats both alike."""

from __future__ import annotations

from collections import Counter

import pytest

from data_catalog.demo_data import write_demo_eval_tasks
from kalm.evaluation import load_local_tasks
from kalm.evaluation.task_spec import eval_texts, select_task_specs
from kalm.evaluation.task_texts import task_texts


@pytest.fixture(scope="module")
def demo_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_eval")
    write_demo_eval_tasks(root)
    return root


@pytest.mark.parametrize("include_corpus", [False, True])
def test_mteb_objects_give_the_texts_of_the_task_files(demo_tasks, include_corpus):
    specs = {spec.name: spec for spec in select_task_specs(demo_tasks)}
    tasks = load_local_tasks(demo_tasks)
    assert {t.metadata.type for t in tasks} == {
        "STS",
        "PairClassification",
        "Classification",
        "Clustering",
        "Retrieval",
        "Reranking",
    }
    for task in tasks:
        expected = Counter(eval_texts(specs[task.metadata.name], include_corpus))
        assert Counter(task_texts(task, include_corpus)) == expected, task.metadata.name
        assert expected  # every task contributes texts


def test_the_training_split_of_a_classifier_is_not_an_evaluation_text(demo_tasks):
    (task,) = [t for t in load_local_tasks(demo_tasks) if t.metadata.type == "Classification"]
    task.load_data()
    train_only = set(task.dataset["default"]["train"]["text"]) - set(
        task.dataset["default"][task.eval_splits[0]]["text"]
    )
    assert train_only and not train_only & set(task_texts(task))
