"""Python ahocorasick-rs on the same word list and corpus as bench_sensitive, for a ratio."""
import sys
import time

import ahocorasick_rs

words_path, corpus_path = sys.argv[1], sys.argv[2]
words = [line.strip() for line in open(words_path, encoding="utf-8") if line.strip()]
text = open(corpus_path, encoding="utf-8").read()
size = len(text.encode("utf-8"))

started = time.perf_counter()
automaton = ahocorasick_rs.AhoCorasick(words)
build = time.perf_counter() - started
print(f"python ahocorasick-rs {ahocorasick_rs.__version__ if hasattr(ahocorasick_rs, '__version__') else ''}: build {build * 1e3:.0f} ms")

for _ in range(2):
    started = time.perf_counter()
    matches = automaton.find_matches_as_indexes(text)
    elapsed = time.perf_counter() - started
    print(f"python whole corpus, non-overlapping: {size / 1e6 / elapsed:7.1f} MB/s, {len(matches)} matches")

started = time.perf_counter()
matches = automaton.find_matches_as_indexes(text, overlapping=True)
elapsed = time.perf_counter() - started
print(f"python whole corpus, overlapping:     {size / 1e6 / elapsed:7.1f} MB/s, {len(matches)} matches")

messages = text.split("\n")
started = time.perf_counter()
count = 0
for message in messages:
    count += len(automaton.find_matches_as_indexes(message))
elapsed = time.perf_counter() - started
print(f"python per message, non-overlapping:  {size / 1e6 / elapsed:7.1f} MB/s, {count} matches")
