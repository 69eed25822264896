"""The project's own demo data: a small synthetic world of topics and entities, written in several formats.

Everything is generated from a seed, so the files (and therefore every cache key downstream) are identical on
every machine. The texts are lexical enough that a tiny model trained for a minute learns something, and the
sources deliberately contain a malformed line, an empty text and duplicates so quarantine and dedup have work.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TOPICS: dict[str, list[str]] = {
    "astronomy": "planet orbit comet telescope galaxy nebula star moon eclipse crater asteroid comet-tail "
    "satellite supernova quasar gravity".split(),
    "cooking": "recipe oven flour butter garlic simmer roast spice dough sauce pepper basil onion skillet "
    "yeast broth".split(),
    "finance": "stock bond dividend interest loan budget market equity inflation credit savings tax "
    "portfolio broker invoice ledger".split(),
    "music": "guitar melody rhythm chord piano violin tempo lyric concert drum chorus harmony orchestra "
    "album singer bass".split(),
    "medicine": "doctor fever vaccine symptom clinic dosage therapy surgeon allergy infection nurse tablet "
    "diagnosis immune pulse injury".split(),
    "travel": "airport passport luggage hotel ticket beach museum itinerary ferry cruise journey tourist "
    "visa border train map".split(),
    "computing": "compiler kernel server database network cache algorithm memory thread python browser "
    "router encryption software cluster disk".split(),
    "sports": "football tennis coach stadium referee league goal sprint marathon trophy racket helmet "
    "dribble penalty season athlete".split(),
}
NOUNS = {
    "astronomy": "observatory",
    "cooking": "kitchen",
    "finance": "bank",
    "music": "band",
    "medicine": "hospital",
    "travel": "agency",
    "computing": "startup",
    "sports": "club",
}
INTENTS = {
    "card_lost": ["i lost my card", "my card is missing", "cannot find my bank card", "card was stolen"],
    "balance": ["what is my balance", "how much money is left", "show account balance", "check my funds"],
    "transfer": [
        "send money to a friend",
        "make a bank transfer",
        "move funds to savings",
        "wire cash abroad",
    ],
    "refund": ["i want a refund", "return my payment", "money back for the order", "refund a purchase"],
}
SYLLABLES = "ka lo mi ra ne to su vi de ba zo fe ri mu ta no".split()


class _World:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.entities: list[tuple[str, str, list[str]]] = []
        for topic, words in TOPICS.items():
            for _ in range(24):
                name = "".join(self.rng.choice(SYLLABLES) for _ in range(3)).capitalize()
                self.entities.append((name, topic, self.rng.sample(words, 5)))

    def document(self, name: str, topic: str, words: list[str]) -> str:
        a, b, c, d, e = words
        return (
            f"{name} is a {NOUNS[topic]} famous for its {a} and {b}. Visitors mention the {c} "
            f"and the {d}, and many say the {e} is the best part of {name}."
        )

    def question(self, name: str, topic: str, words: list[str]) -> str:
        a, b = self.rng.sample(words[:4], 2)
        return f"which {NOUNS[topic]} is known for {a} and {b}?"

    def hard_negative(self, topic: str, exclude: str) -> tuple[str, str, list[str]]:
        peers = [e for e in self.entities if e[1] == topic and e[0] != exclude]
        return self.rng.choice(peers)

    def paraphrase(self, text: str, keep: float) -> str:
        words = text.split()
        for i in range(len(words)):
            if self.rng.random() > keep:
                words[i] = self.rng.choice(TOPICS[self.rng.choice(list(TOPICS))])
        return " ".join(words)


def write_demo_sources(root: Path, seed: int = 7) -> None:
    """Write the raw training sources the demo catalog (``data_catalog/demo.yaml``) declares."""
    world = _World(seed)
    rng = world.rng
    (root / "pretrain").mkdir(parents=True, exist_ok=True)
    (root / "finetune").mkdir(parents=True, exist_ok=True)

    with open(root / "pretrain" / "articles.jsonl", "w", encoding="utf-8") as out:
        for name, topic, words in world.entities:
            record = {
                "title": f"{name}: a {topic} {NOUNS[topic]}",
                "body": world.document(name, topic, words),
            }
            out.write(json.dumps(record) + "\n")
        out.write(json.dumps(record) + "\n")  # an exact duplicate for dedup
        out.write('{"title": "broken line", "body": \n')  # malformed JSON for the quarantine

    with open(root / "pretrain" / "forum.csv", "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["question", "answer"])
        for name, topic, words in world.entities:
            writer.writerow([world.question(name, topic, words), world.document(name, topic, words)])
        writer.writerow(["", "an answer without a question"])  # empty text for the quarantine

    queries, positives, negatives = [], [], []
    for name, topic, words in world.entities:
        other = world.hard_negative(topic, name)
        queries.append(world.question(name, topic, words))
        positives.append(world.document(name, topic, words))
        negatives.append([world.document(*other)])
    table = pa.table({"query": queries, "passage": positives, "hard_negatives": negatives})
    pq.write_table(table, root / "finetune" / "retrieval.parquet")

    with open(root / "finetune" / "nli.jsonl", "w", encoding="utf-8") as out:
        for name, topic, words in world.entities:
            premise = world.document(name, topic, words)
            other = world.hard_negative(topic, name)
            record = {
                "premise": premise,
                "entailment": world.paraphrase(premise, keep=0.85),
                "contradiction": world.document(*other),
            }
            out.write(json.dumps(record) + "\n")

    with open(root / "finetune" / "intents.csv", "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "intent"])
        for _ in range(40):
            for intent, phrases in INTENTS.items():
                writer.writerow(
                    [f"{rng.choice(phrases)} {rng.choice(['please', 'now', 'today', 'asap'])}", intent]
                )


def _write_task(
    root: Path,
    name: str,
    task_type: str,
    main_score: str,
    instruction: str,
    files: dict[str, list[dict]],
    extra: dict | None = None,
) -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for file, records in files.items():
        path = folder / file
        path.parent.mkdir(parents=True, exist_ok=True)
        if file.endswith(".tsv"):
            lines = ["query-id\tcorpus-id\tscore"] + [f"{r['q']}\t{r['d']}\t{r['s']}" for r in records]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        rows[file.split(".")[0].split("/")[-1]] = len(records)
    meta = {
        "name": name,
        "type": task_type,
        "languages": ["eng"],
        "main_score": main_score,
        "split": "test",
        "instruction": instruction,
        "mteb_counterpart": None,
        "official_test": False,
        "source": "kalm-pipeline demo generator",
        "license": "Apache-2.0",
        "rows": rows,
        "dropped": [],
    }
    (folder / "task.json").write_text(json.dumps(meta | (extra or {}), indent=2) + "\n", encoding="utf-8")


def write_demo_eval_tasks(root: Path, seed: int = 11) -> None:
    """Write small evaluation tasks in the layout of ``shared/datasets/eval`` (all six task types)."""
    world = _World(seed)
    rng = world.rng
    entities = world.entities
    docs = {f"d{i}": world.document(*e) for i, e in enumerate(entities)}
    sts = []
    for name, topic, words in rng.sample(entities, 60):
        doc = world.document(name, topic, words)
        keep = rng.choice([1.0, 0.8, 0.6, 0.4])
        score = 5.0 * keep if keep < 1.0 else 5.0
        other = doc if keep > 0.5 else world.document(*world.hard_negative(topic, name))
        sts.append({"sentence1": doc, "sentence2": world.paraphrase(other, keep), "score": round(score, 2)})
    _write_task(
        root,
        "DemoSTS",
        "STS",
        "cosine_spearman",
        "Retrieve semantically similar text",
        {"test.jsonl": sts},
        {"min_score": 0, "max_score": 5},
    )

    picked = rng.sample(range(len(entities)), 40)
    queries = [{"_id": f"q{i}", "text": world.question(*entities[i])} for i in picked]
    corpus = [{"_id": key, "title": "", "text": text} for key, text in docs.items()]
    qrels = [{"q": f"q{i}", "d": f"d{i}", "s": 1} for i in picked]
    _write_task(
        root,
        "DemoRetrieval",
        "Retrieval",
        "ndcg_at_10",
        "Given a question, retrieve the passage that answers it",
        {"corpus.jsonl": corpus, "queries.jsonl": queries, "qrels/test.tsv": qrels},
    )

    def intent_rows(count: int) -> list[dict]:
        return [
            {"text": f"{rng.choice(p)} {rng.choice(['thanks', 'quickly', 'here'])}", "label": k}
            for _ in range(count)
            for k, p in INTENTS.items()
        ]

    _write_task(
        root,
        "DemoClassification",
        "Classification",
        "accuracy",
        "Given a banking request, find the intent",
        {"train.jsonl": intent_rows(12), "test.jsonl": intent_rows(10)},
    )
    clusters = [{"text": f"{n}: a {t} {NOUNS[t]}", "label": t} for n, t, _ in entities]
    _write_task(
        root,
        "DemoClustering",
        "Clustering",
        "v_measure",
        "Identify the topic of the title",
        {"test.jsonl": clusters},
    )
    pairs = []
    for name, topic, words in rng.sample(entities, 60):
        doc = world.document(name, topic, words)
        same = rng.random() < 0.5
        other = doc if same else world.document(*world.hard_negative(topic, name))
        pairs.append({"sentence1": doc, "sentence2": world.paraphrase(other, 0.8), "label": int(same)})
    _write_task(
        root,
        "DemoPairClassification",
        "PairClassification",
        "max_ap",
        "Retrieve semantically similar text",
        {"test.jsonl": pairs},
    )
    rerank = []
    for i in picked[:20]:
        name, topic, words = entities[i]
        negatives = [world.document(*world.hard_negative(topic, name)) for _ in range(4)]
        rerank.append(
            {"query": world.question(name, topic, words), "positive": [docs[f"d{i}"]], "negative": negatives}
        )
    _write_task(
        root,
        "DemoReranking",
        "Reranking",
        "map",
        "Given a question, rank passages by how well they answer it",
        {"test.jsonl": rerank},
    )
