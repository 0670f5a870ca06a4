"""Does a small bi-GRU on GLUE SST-2 gain from reading words outside its vocabulary by their spelling?
A stand-alone probe in plain torch (no dlops code), before building anything into the tokenizer.

The model follows params.yaml's text-rnn: embedding 32, bi-GRU 32, mean pooling, dropout 0.2, AdamW 3e-3
(weight decay 1e-4), batch 64, 8 epochs, early stopping on val loss (patience 3); the vocabulary is the
5,000 most frequent training words seen at least twice; texts are lowercased, split into words and
punctuation, cut at 64 tokens. Unlike the pipeline it has no token dropout and no length bucketing, and
no LR schedule unless a third argument `cosine` asks for the pipeline's (cosine over the 8 epochs, no
warmup). Val is a random 15% of train.tsv; dev.tsv is scored after every epoch.

Modes (how a word outside the vocabulary is read):
  words           as <unk>
  subwords        fastText's subword vectors (Bojanowski et al. 2017): every word's vector is the mean
                  of its own row (vocabulary words only) and its character 3-5-gram rows, hashed into
                  50,000 buckets; words first met in val or dev are read by their n-grams too
  subwords-train  the same, but a word the training split never had is <unk>
  nearest         as the vocabulary word sharing most character 3-5-grams (Jaccard >= 0.3), else <unk>

Run: .venv/bin/python benchmarks/subword_probe.py MODE SEED [cosine]  (a JSON line per epoch, then the result)
Results: benchmarks/results/subword-probe-2026-12-07.json (and WordPiece runs made with HF tokenizers).
"""

from __future__ import annotations

import collections
import csv
import functools
import json
import random
import re
import sys
import time
import zlib
from pathlib import Path

import torch
from torch import nn

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
VOCAB, MIN_FREQ, LENGTH, BUCKETS, SLOTS = 5000, 2, 64, 50_000, 24


def read(path: Path) -> list[tuple[list[str], int]]:
    with path.open() as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(re.findall(r"\w+|[^\w\s]", r["sentence"].lower())[:LENGTH], int(r["label"])) for r in rows]


def grams(word: str) -> list[str]:
    marked = f"<{word}>"
    return [marked[i : i + n] for n in (3, 4, 5) for i in range(len(marked) - n + 1)]


def nearest_word(vocab: list[str]) -> collections.abc.Callable[[str], str | None]:
    index: dict[str, set[str]] = collections.defaultdict(set)
    for word in vocab:
        for gram in set(grams(word)):
            index[gram].add(word)

    @functools.cache  # one search per distinct word
    def nearest(word: str) -> str | None:
        mine, hits = set(grams(word)), collections.Counter()
        for gram in mine:
            hits.update(index.get(gram, ()))
        scored = [(c / (len(mine) + len(set(grams(v))) - c), v) for v, c in hits.items()]
        similarity, word = min(scored, key=lambda sv: (-sv[0], sv[1]), default=(0.0, None))  # ties: a-z
        return word if similarity >= 0.3 else None

    return nearest


def main(mode: str, seed: int, cosine: bool) -> None:
    torch.set_num_threads(1)
    train, dev = read(DATA / "train.tsv"), read(DATA / "dev.tsv")
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    cut = int(0.15 * len(train))
    val, train = [train[i] for i in order[:cut]], [train[i] for i in order[cut:]]
    counts = collections.Counter(w for s, _ in train for w in s)
    vocab = [w for w, c in counts.most_common(VOCAB) if c >= MIN_FREQ]
    words = ["<pad>", "<unk>", *vocab]  # own rows; then words read by their n-grams only
    seen = train if mode == "subwords-train" else train + val + dev
    words += sorted({w for s, _ in seen for w in s} - set(words)) if mode.startswith("subwords") else []
    ids, own = {w: i for i, w in enumerate(words)}, 2 + len(vocab)
    table = torch.zeros(len(words), 1 + SLOTS, dtype=torch.long)  # row ids per word, 0 = none
    for i, word in enumerate(words[1:], start=1):
        rows = [i] if i < own else []
        if mode.startswith("subwords") and i >= 2:
            rows += [own + zlib.crc32(g.encode()) % BUCKETS for g in grams(word)][:SLOTS]
        table[i, : len(rows)] = torch.tensor(rows)
    nearest = nearest_word(vocab) if mode == "nearest" else lambda w: None

    def encode(data: list[tuple[list[str], int]]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.zeros(len(data), LENGTH, dtype=torch.long)
        for j, (s, _) in enumerate(data):
            row = [ids.get(w, ids.get(nearest(w) or "<unk>", 1)) for w in s] or [1]
            x[j, : len(row)] = torch.tensor(row)
        return x, torch.tensor([y for _, y in data])

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(own + BUCKETS, 32, padding_idx=0)
            self.gru = nn.GRU(32, 32, batch_first=True, bidirectional=True)
            self.drop, self.out = nn.Dropout(0.2), nn.Linear(64, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            unique, inverse = torch.unique(x, return_inverse=True)
            rows = table[unique]
            vectors = self.emb(rows).sum(1) / (rows != 0).sum(1, keepdim=True).clamp(min=1)
            lengths = (x != 0).sum(1).clamp(min=1)
            packed = nn.utils.rnn.pack_padded_sequence(
                self.drop(vectors[inverse]), lengths, batch_first=True, enforce_sorted=False
            )
            states = self.gru(packed)[0]
            h, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=LENGTH)
            mask = (x != 0).unsqueeze(-1).float()
            return self.out(self.drop((h * mask).sum(1) / mask.sum(1).clamp(min=1)))

    torch.manual_seed(seed)
    net, loss = Net(), nn.CrossEntropyLoss()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8) if cosine else None
    (xt, yt), (xv, yv), (xd, yd) = encode(train), encode(val), encode(dev)

    def score(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(x[i : i + 512]) for i in range(0, len(x), 512)])
        net.train()
        return loss(logits, y).item(), (logits.argmax(1) == y).float().mean().item()

    best, state, waited, started = float("inf"), None, 0, time.time()
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, 9):
        perm = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(xt), 64):
            batch = perm[i : i + 64]
            opt.zero_grad()
            loss(net(xt[batch]), yt[batch]).backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        if schedule is not None:
            schedule.step()
        val_loss, val_acc = score(xv, yv)
        line = {"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc, "dev_acc": score(xd, yd)[1]}
        print(json.dumps({k: round(v, 4) for k, v in line.items()}), flush=True)
        if val_loss < best:
            best, waited, state = val_loss, 0, {k: v.clone() for k, v in net.state_dict().items()}
        elif (waited := waited + 1) >= 3:
            break
    net.load_state_dict(state or net.state_dict())
    result = {"mode": mode, "seed": seed, "dev_acc": round(score(xd, yd)[1], 4)}
    print(json.dumps(result | {"seconds": round(time.time() - started)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:] == ["cosine"])
