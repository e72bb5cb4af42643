#!/usr/bin/env python3
"""The README's baseline: TF-IDF unigrams+bigrams with logistic regression.

Trained on the same training documents as an adapter pack (the first --max-docs of the file),
regularisation chosen on the dev file, accuracy reported on the test file. Needs scikit-learn
(`python3 -m pip install scikit-learn`).

    python3 scripts/tfidf_baseline.py --train ../shared/data/imdb/train.jsonl \
        --dev ../shared/data/imdb/dev.jsonl --test ../shared/data/imdb/test.jsonl --max-docs 2000
"""
import argparse
import json

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def read(path, text_field, label_field, limit=None):
    texts, labels = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            texts.append(record[text_field])
            labels.append(str(record[label_field]))
            if limit is not None and len(texts) >= limit:
                break
    return texts, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--max-docs", type=int, default=None, help="first N training documents")
    parser.add_argument("--max-dev-docs", type=int, default=None, help="first N dev documents")
    parser.add_argument("--max-test-docs", type=int, default=None, help="first N test documents")
    args = parser.parse_args()

    train_texts, train_labels = read(args.train, args.text_field, args.label_field, args.max_docs)
    dev_texts, dev_labels = read(args.dev, args.text_field, args.label_field, args.max_dev_docs)
    test_texts, test_labels = read(args.test, args.text_field, args.label_field, args.max_test_docs)

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train_matrix = vectorizer.fit_transform(train_texts)
    dev_matrix = vectorizer.transform(dev_texts)
    test_matrix = vectorizer.transform(test_texts)

    best = None
    for inverse_penalty in [0.3, 1, 3, 10, 30, 100]:
        model = LogisticRegression(C=inverse_penalty, max_iter=2000)
        model.fit(train_matrix, train_labels)
        dev_accuracy = accuracy_score(dev_labels, model.predict(dev_matrix))
        if best is None or dev_accuracy > best[0]:
            best = (dev_accuracy, inverse_penalty, model)
    dev_accuracy, inverse_penalty, model = best
    predictions = model.predict(test_matrix)
    print(json.dumps({
        "train_documents": len(train_texts),
        "features": len(vectorizer.vocabulary_),
        "C": inverse_penalty,
        "dev_accuracy": round(dev_accuracy, 4),
        "test_documents": len(test_texts),
        "test_accuracy": round(accuracy_score(test_labels, predictions), 4),
        "test_macro_f1": round(f1_score(test_labels, predictions, average="macro"), 4),
    }))


if __name__ == "__main__":
    main()
