"""SST-5 phrase-level training (`run_classification.py --train_granularity phrases`).

Fast: the PTB tree parser on hand-written trees (nesting, escapes, every node's label, malformed lines), dedup and
the exclusion of validation / test sentences, the option end to end on a tiny random BERT and a small SST-like
folder (trees written by the test), the errors for data without trees, the result record and the resume check,
the runner's `-phrases` runs. With the shared data: the phrase counts of the real training trees, none equal to a
validation or test sentence (skipped with a reason where the data is absent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "trainers"))
sys.path.insert(0, str(REPO_ROOT / "trainers" / "experiments"))

import run_classification  # noqa: E402
from test_classification import base_args, write_jsonl  # noqa: E402

from msnn_hf.data import (  # noqa: E402
    DataValidationError,
    SentimentTree,
    check_trees_match_sentences,
    default_data_dir,
    parse_sentiment_tree,
    phrase_training_rows,
    read_rows,
    read_sentiment_trees,
    sentence_match_key,
    sst_tree_file,
)

NBSP = "\u00a0"


# ---------------------------------------------------------------------------------------------------- the parser
def test_every_node_of_a_nested_tree_with_its_label():
    tree = parse_sentiment_tree("(3 (2 It) (4 (4 (2 really) (4 rocks)) (2 .)))\n")
    assert tree.text == "It really rocks ." and tree.label == 3
    assert tree.labelled_phrases() == [  # pre-order: the sentence first
        ("It really rocks .", 3),
        ("It", 2),
        ("really rocks .", 4),
        ("really rocks", 4),
        ("really", 2),
        ("rocks", 4),
        (".", 2),
    ]
    assert [child.label for child in tree.children] == [2, 4] and tree.children[0].word == "It"


def test_ptb_escapes_and_odd_tokens_are_kept_as_the_sentence_files_have_them():
    line = f"(1 (2 -LRB-) (1 (1 (2 co-writer\\/director) (1 (0 sucks) (2 8{NBSP}1\\/2))) (2 -RRB-)))"
    tree = parse_sentiment_tree(line)
    assert tree.text == f"-LRB- co-writer\\/director sucks 8{NBSP}1\\/2 -RRB-"
    assert ("co-writer\\/director sucks 8" + NBSP + "1\\/2", 1) in tree.labelled_phrases()
    assert (f"8{NBSP}1\\/2", 2) in tree.labelled_phrases()
    assert len(tree.labelled_phrases()) == 2 * len(tree.words) - 1  # a binary tree: every node, leaves too
    assert parse_sentiment_tree("(4 wow)") == SentimentTree(4, word="wow")  # a one-word sentence


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("(2 (2 a) (2 b)", r"1 unclosed node"),
        ("(2 (2 a) (2 b)))", r"unbalanced '\)'"),
        ("(x (2 a) (2 b))", r"integer label"),
        ("(2 a (2 b))", r"both a word and children"),
        ("(2 (2 a)) (2 b)", r"more than one tree"),
        ("(2 )", r"empty leaf"),
        ("(2 (2 a)) junk", r"unexpected 'j'"),
        ("", r"no tree"),
    ],
)
def test_malformed_trees_are_refused(line, message):
    with pytest.raises(ValueError, match=message):
        parse_sentiment_tree(line)


def test_a_bad_line_of_a_tree_file_is_named(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("(3 (2 It) (3 works))\n\n(2 (2 a) (2 b)\n")
    with pytest.raises(DataValidationError, match=r"tree file .*train\.txt, line 3: 1 unclosed node"):
        read_sentiment_trees(path)
    path.write_text("(3 (2 It) (3 works))\n\n(2 (2 a) (2 b))\n")
    assert [t.text for t in read_sentiment_trees(path)] == ["It works", "a b"]  # blank lines skipped


# -------------------------------------------------------------------------------------- dedup and held-out texts
def test_duplicates_keep_one_row_with_the_most_frequent_label_ties_to_the_first():
    trees = [
        parse_sentiment_tree(line)
        for line in (
            "(3 (2 good) (2 .))",  # 'good' 2
            "(4 (3 good) (3 fun))",  # 'good' 3
            "(3 (3 good) (2 .))",  # 'good' 3: most frequent
            "(1 (1 bad) (2 x))",  # 'bad' 1 first ...
            "(2 (2 bad) (2 y))",  # ... 'bad' 2: a tie, the first label wins
        )
    ]
    rows, stats = phrase_training_rows(trees)
    labels = {row["text"]: row["label"] for row in rows}
    assert len(labels) == len(rows)  # every text once
    assert labels["good"] == 3 and labels["bad"] == 1 and labels["."] == 2
    assert labels["good ."] == 3  # the first and third trees: the same sentence, labelled 3 both times
    assert stats == {
        "trees": 5,
        "nodes": 15,
        "distinct_phrases": 10,
        "label_conflicts": 2,
        "held_out_excluded": 0,
        "held_out_exact": 0,
        "phrases": 10,
    }
    assert [row["text"] for row in rows][:3] == ["good .", "good", "."]  # order of first occurrence


def test_no_phrase_equal_to_a_validation_or_test_sentence_is_kept():
    trees = [parse_sentiment_tree("(3 (2 The) (3 (3 (3 movie) (2 rocks)) (2 .)))")]
    held_out = ["movie rocks .", "THE MOVIE ROCKS .", "rocks", "not a phrase"]
    rows, stats = phrase_training_rows(trees, held_out, text_column="sentence", label_column="y")
    texts = [row["sentence"] for row in rows]
    held_keys = {sentence_match_key(t) for t in held_out}
    assert not [t for t in texts if sentence_match_key(t) in held_keys]  # a leak fails here
    assert set(texts) == {"The", "movie rocks", "movie", "."}
    assert (
        stats["held_out_excluded"] == 3 and stats["held_out_exact"] == 2
    )  # 'The movie rocks .' only by case
    assert sentence_match_key(f"Café{NBSP} au  lait") == sentence_match_key("CAFE AU LAIT")


def test_the_trees_must_be_the_training_sentences():
    trees = [parse_sentiment_tree("(3 (2 It) (3 works))"), parse_sentiment_tree("(1 (2 It) (1 fails))")]
    check_trees_match_sentences(trees, ["It works", "It fails"], [3, 1], "t.txt")
    with pytest.raises(
        DataValidationError, match=r"tree 2 differs from training row 1 \(sentence 'It fails'"
    ):
        check_trees_match_sentences(trees, ["It works", "It failed"], [3, 1], "t.txt")
    with pytest.raises(DataValidationError, match=r"tree 2 differs .* \(label 1 vs 0\)"):
        check_trees_match_sentences(trees, ["It works", "It fails"], [3, 0], "t.txt")
    with pytest.raises(DataValidationError, match=r"holds 2 trees but the training split 1 sentences"):
        check_trees_match_sentences(trees, ["It works"], [3], "t.txt")


# ------------------------------------------------------------------------------------------- a small SST folder
POSITIVE = ("loved", "loves", "enjoy", "wonderful", "beautiful", "kindness", "powerful")


def tree_line(words: list[str]) -> str:
    """A right-branching PTB tree over `words`, each node labelled 3 if it holds a positive word, else 1 (words
    without sentiment: 2)."""

    def label(span: list[str], leaf: bool) -> int:
        if any(w.lower() in POSITIVE for w in span):
            return 3
        return 2 if leaf else 1

    if len(words) == 1:
        return f"({label(words, True)} {words[0]})"
    return f"({label(words, False)} {tree_line(words[:1])} {tree_line(words[1:])})"


def sst_like_folder(folder: Path, corpus: list[str]) -> dict:
    """train / validation / test JSONL + ptb_trees/{train,dev,test}.txt as the shared SST-5 folder has them. One test
    sentence is a phrase of a training tree as it stands, one validation sentence is one up to case."""
    sentences = [s.replace(".", " .").split() for s in corpus]
    train, validation, test = sentences[:24], sentences[24:32], sentences[32:40]
    test[0] = train[3][1:]  # a phrase (suffix) of training tree 4
    validation[0] = [w.upper() for w in train[5][2:]]  # a phrase of training tree 6 up to case
    (folder / "ptb_trees").mkdir(parents=True)
    for split, rows, tree_file in (
        ("train", train, "train.txt"),
        ("validation", validation, "dev.txt"),
        ("test", test, "test.txt"),
    ):
        lines = [tree_line(words) for words in rows]
        (folder / "ptb_trees" / tree_file).write_text("".join(line + "\n" for line in lines))
        write_jsonl(
            folder / f"{split}.jsonl",
            [
                {"text": parse_sentiment_tree(line).text, "label": parse_sentiment_tree(line).label}
                for line in lines
            ],
        )
    return {"train": train, "validation": validation, "test": test}


@pytest.fixture(scope="module")
def sst_like(tmp_path_factory, tiny_corpus) -> Path:
    folder = tmp_path_factory.mktemp("sst_like")
    sst_like_folder(folder, tiny_corpus)
    return folder


def expected_phrases(folder: Path) -> set[str]:
    phrases = {
        p for t in read_sentiment_trees(folder / "ptb_trees" / "train.txt") for p, _ in t.labelled_phrases()
    }
    held = {
        sentence_match_key(r["text"])
        for s in ("validation", "test")
        for _, r in read_rows(folder / f"{s}.jsonl")
    }
    return {p for p in phrases if sentence_match_key(p) not in held}


def test_phrase_training_split_leaves_out_every_evaluated_sentence(sst_like):
    """The split main() trains on: every distinct phrase of the training trees, no validation / test sentence."""
    from msnn_hf.data import load_classification_splits, validate_classification_splits

    raw = load_classification_splits(data_dir=sst_like)
    labels = validate_classification_splits(
        raw, "text", "label", label_names=run_classification.NAMED_LABELS["sst5"]
    )
    args = run_classification.DataArguments(data_dir=str(sst_like), train_granularity="phrases")
    train, stats = run_classification.phrase_training_split(raw, args, str(sst_like), labels)
    texts = train["text"]
    evaluated = {sentence_match_key(t) for split in ("validation", "test") for t in raw[split]["text"]}
    assert not [t for t in texts if sentence_match_key(t) in evaluated]  # a leak into training fails here
    assert set(texts) == expected_phrases(sst_like) and len(texts) == len(set(texts))
    assert stats["held_out_excluded"] == 2 and stats["held_out_exact"] == 1 and stats["sentences"] == 24
    assert set(train["label"]) <= {1, 2, 3} and train.column_names == ["text", "label"]


def test_phrases_end_to_end(tmp_path, monkeypatch, capsys, sst_like, tiny_backbone_dir, tiny_processor):
    corpora = []
    monkeypatch.setattr(  # the processor would be built from the training sentences, not the phrases
        run_classification,
        "load_or_build_processor",
        lambda model_args, training_args, corpus: corpora.append(list(corpus)) or tiny_processor,
    )
    out = tmp_path / "run"
    argv = base_args(
        tiny_backbone_dir,
        "unused",
        sst_like,
        out,
        class_names="sst5",
        train_granularity="phrases",
        train_sampling_strategy="group_by_length",
        max_steps=3,
        eval_strategy="steps",
        save_strategy="steps",
        eval_steps=3,
        save_steps=3,
        results_file=tmp_path / "record.json",
    )
    results = run_classification.main(argv)
    record = json.loads((tmp_path / "record.json").read_text())
    phrases = expected_phrases(sst_like)
    assert record["data"]["train_granularity"] == "phrases"
    assert record["data"]["train_sampling_strategy"] == "group_by_length"
    assert record["data"]["sizes"] == {"train": len(phrases), "validation": 8, "test": 8}
    assert record["data"]["phrases"]["phrases"] == len(phrases) and record["data"]["phrases"]["trees"] == 24
    assert record["train_steps"] == 3 and results["test"]["num_examples"] == 8  # tested on the sentences
    assert corpora == [[r["text"] for _, r in read_rows(sst_like / "train.jsonl")]]
    settings = json.loads((out / "run_settings.json").read_text())
    assert settings["data"]["train_granularity"] == "phrases"
    assert settings["training"]["train_sampling_strategy"] == "group_by_length"
    printed = capsys.readouterr().out
    assert (
        f"training data: phrases ({len(phrases)} examples" in printed and "2 equal to a validation" in printed
    )

    # the same folder with sentences (or another sampler) is refused, as any other change of settings
    sentences = [*argv]
    sentences[sentences.index("--train_granularity") + 1] = "sentences"
    with pytest.raises(ValueError, match=r"data\.train_granularity: 'phrases' -> 'sentences'"):
        run_classification.main(sentences)
    random_order = [*argv]
    random_order[random_order.index("--train_sampling_strategy") + 1] = "random"
    with pytest.raises(ValueError, match=r"training\.train_sampling_strategy: 'group_by_length' -> 'random'"):
        run_classification.main(random_order)


def test_sentence_runs_record_their_granularity(
    tmp_path, sst_like, tiny_backbone_dir, tiny_processor_dir, capsys
):
    argv = base_args(tiny_backbone_dir, tiny_processor_dir, sst_like, tmp_path / "run", class_names="sst5")
    run_classification.main([*argv, "--max_steps", "1", "--results_file", str(tmp_path / "record.json")])
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["data"]["train_granularity"] == "sentences" and record["data"]["phrases"] is None
    assert record["data"]["sizes"]["train"] == 24
    assert "training data: sentences (24 examples)" in capsys.readouterr().out


def test_phrases_are_refused_for_data_without_trees(tmp_path, tiny_corpus):
    data = tmp_path / "data"  # an SST-like folder without ptb_trees/: not SST
    data.mkdir()
    for split, rows in (
        ("train", tiny_corpus[:16]),
        ("validation", tiny_corpus[16:24]),
        ("test", tiny_corpus[24:32]),
    ):
        write_jsonl(data / f"{split}.jsonl", [{"text": s, "label": i % 2} for i, s in enumerate(rows)])
    argv = base_args("does/not/exist", "does/not/exist", data, tmp_path / "out", train_granularity="phrases")
    with pytest.raises(ValueError, match=r"needs the SST parse trees .*ptb_trees/train\.txt does not exist"):
        run_classification.main(argv)
    hub = [*argv[: argv.index("--data_dir")], *argv[argv.index("--data_dir") + 2 :], "--dataset_name", "imdb"]
    with pytest.raises(ValueError, match=r"the Hub dataset imdb has no trees"):
        run_classification.main(hub)
    with pytest.raises(ValueError, match=r"keeps SST's own validation split"):
        run_classification.main([*argv, "--validation_split_percentage", "10"])
    # trees of other sentences than the training split's
    (data / "ptb_trees").mkdir()
    other = tiny_corpus[100:116]
    (data / "ptb_trees" / "train.txt").write_text("".join(tree_line(s.split()) + "\n" for s in other))
    with pytest.raises(DataValidationError, match=r"tree 1 differs from training row 0 \(sentence"):
        run_classification.main([*argv, "--class_names", "sst5"])
    with pytest.raises(SystemExit):  # argparse: "invalid choice: 'words' (choose from sentences, phrases)"
        run_classification.parse_args(
            ["--model_name_or_path", "x", "--output_dir", "o", "--train_granularity", "words"]
        )
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------------- the runner
def test_runner_phrase_runs_are_kept_apart(tmp_path, capsys):
    import sst5

    results, outputs = tmp_path / "results" / "sst5", tmp_path / "outputs" / "sst5"
    common = ["--results_dir", str(results), "--outputs_dir", str(outputs), "--model_name_or_path", "bb"]
    args = sst5.parse_args(["--only", "dm-scalar-phrases,backbone", "--seeds", "1", *common])
    assert sst5.plan(args) == [("dm-scalar-phrases", 1), ("backbone", 1)]
    assert sst5.result_path(args, "dm-scalar-phrases", 1) == tmp_path / "results" / "sst5-phrases" / (
        "dm-scalar-phrases-seed1.json"
    )
    assert sst5.result_path(args, "backbone", 1) == results / "backbone-seed1.json"
    assert sst5.output_dir(args, "dm-scalar-phrases", 1) == tmp_path / "outputs" / "sst5-phrases" / (
        "dm-scalar-phrases-seed1"
    )
    cmd = sst5.training_command(args, "dm-scalar-phrases", 1)
    assert cmd[cmd.index("--variant") + 1] == "dm-scalar"
    assert cmd[cmd.index("--train_granularity") + 1] == "phrases"
    assert cmd[cmd.index("--train_sampling_strategy") + 1] == "group_by_length"
    assert "--train_granularity" not in sst5.training_command(args, "backbone", 1)
    # word-aligned variants: the same variant over a word-aligned processor, not in the default grid
    word = sst5.training_command(args, "dm-token-word", 1)
    assert word[word.index("--variant") + 1] == "dm-token"
    assert json.loads(word[word.index("--processor_kwargs") + 1]) == {"alignment": "word"}
    assert "--processor_kwargs" not in sst5.training_command(args, "dm-token", 1)
    assert "dm-token-word" not in sst5.DEFAULT_GRID and "dm-token" in sst5.DEFAULT_GRID
    assert sst5.run_of("late-phrases").members == (
        "backbone-phrases",
        "phonetic-only-phrases",
        "morphological-only-phrases",
    )
    assert sst5.main(["--only", "li-no-phonetic-phrases", "--seeds", "1", "--dry_run", *common]) == 0
    out = capsys.readouterr().out
    assert "li-no-phonetic-phrases" in out and "--streams semantic,morphological" in out
    with pytest.raises(SystemExit, match=r"Unknown run\(s\) \['nothing-phrases'\]"):
        sst5.plan(sst5.parse_args(["--only", "nothing-phrases", *common]))


# --------------------------------------------------------------------------------------------- the shared data
SST5_DIR = default_data_dir() / "sst5"


@pytest.mark.skipif(
    not sst_tree_file(SST5_DIR, "train").is_file(),
    reason=f"the shared SST-5 trees are absent ({sst_tree_file(SST5_DIR, 'train')}; set MSNN_DATA_DIR)",
)
def test_real_sst5_phrases_hold_no_test_sentence():
    """The 8,544 training trees: 318,582 labelled nodes, 159,274 distinct phrases (no text with two labels); the 6
    equal to a validation or test sentence (4 byte for byte, 2 up to case) are left out."""
    rows = {s: [r for _, r in read_rows(SST5_DIR / f"{s}.jsonl", s)] for s in ("train", "validation", "test")}
    trees = read_sentiment_trees(sst_tree_file(SST5_DIR, "train"))
    check_trees_match_sentences(
        trees, [r["text"] for r in rows["train"]], [r["label"] for r in rows["train"]], "train.txt"
    )
    held_out = [r["text"] for s in ("validation", "test") for r in rows[s]]
    phrases, stats = phrase_training_rows(trees, held_out)
    assert stats == {
        "trees": 8544,
        "nodes": 318582,
        "distinct_phrases": 159274,
        "label_conflicts": 0,
        "held_out_excluded": 6,
        "held_out_exact": 4,
        "phrases": 159268,
    }
    test_keys = {sentence_match_key(r["text"]) for r in rows["test"]}
    validation_keys = {sentence_match_key(r["text"]) for r in rows["validation"]}
    keys = {sentence_match_key(r["text"]) for r in phrases}
    assert not keys & test_keys and not keys & validation_keys
