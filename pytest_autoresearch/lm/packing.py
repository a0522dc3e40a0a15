"""Packing: documents cut into pieces and packed best-fit into rows, and the pinned evaluation rows.

Each document (BOS + tokens) is cut into pieces of at most one row (T + 1 tokens); a piece
after the first repeats the previous piece's last token as its context, and that token is
never scored twice. Rows are filled best-fit from a buffer of pieces; when nothing fits the
space left, the shortest piece is split and its rest goes back to the buffer. Targets that
would be scored twice (or predicted across a cut) are -1, which the loss ignores. The
dataset (evaluation rows) and the dataloader (training batches) both pack with these.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from pytest_autoresearch.lm.profiles import Profile

IGNORE = -1  # target value the loss and evaluate_bpb skip


class Piece(NamedTuple):
    start: int  # index into the split's token array
    length: int
    opening: bool  # starts with the document's BOS (scored when it lands mid-row)


def pieces_of(offsets: np.ndarray, order: Iterable[int], capacity: int) -> Iterator[Piece]:
    """Cut documents (in `order`) into pieces of at most `capacity` tokens, overlapping by one."""
    for doc in order:
        start, end = int(offsets[doc]), int(offsets[doc + 1])
        yield Piece(start, min(end - start, capacity), True)
        start += capacity - 1
        while end - start > 1:
            yield Piece(start, min(end - start, capacity), False)
            start += capacity - 1


def pack_rows(
    tokens: np.ndarray, pieces: Iterator[Piece], rows: int, capacity: int, buffer_size: int = 1000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield batches (rows, capacity) of tokens with a (rows, capacity - 1) mask of scored targets.

    Stops when `pieces` runs out and the buffer can no longer fill a whole batch.
    """
    by_length: list[list[Piece]] = [[] for _ in range(capacity + 1)]
    buffered = 0
    exhausted = False
    while True:
        batch = np.empty((rows, capacity), dtype=np.int64)
        scored = np.ones((rows, capacity - 1), dtype=bool)
        for row in range(rows):
            pos = 0
            while pos < capacity:
                while buffered < buffer_size and not exhausted:
                    piece = next(pieces, None)
                    if piece is None:
                        exhausted = True
                    else:
                        by_length[piece.length].append(piece)
                        buffered += 1
                if buffered == 0:
                    return
                space = capacity - pos
                length = space
                while length > 0 and not by_length[length]:
                    length -= 1
                if length:  # the longest piece that fits
                    piece = by_length[length].pop()
                    buffered -= 1
                else:  # none fits: split the shortest, its rest goes back
                    length = next(n for n in range(space + 1, capacity + 1) if by_length[n])
                    piece = by_length[length].pop()
                    rest = Piece(piece.start + space - 1, piece.length - space + 1, False)
                    by_length[rest.length].append(rest)
                    length = space
                batch[row, pos : pos + length] = tokens[piece.start : piece.start + length]
                if pos > 0 and not piece.opening:
                    scored[row, pos - 1] = False  # its first token was already a target
                pos += length
        yield batch, scored


def split_rows(batch: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of a packed batch; unscored targets become IGNORE."""
    return batch[:, :-1], np.where(scored, batch[:, 1:], IGNORE)


def validation_rows(tokens: np.ndarray, offsets: np.ndarray, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """The pinned evaluation rows: the whole split packed in order, then an evenly spread sample.

    The sample has eval_tokens // max_seq_len rows (all of them if the split is smaller), so
    evaluation covers the whole split, not just document openings.
    """
    capacity = profile.max_seq_len + 1
    packed = list(pack_rows(tokens, pieces_of(offsets, range(len(offsets) - 1), capacity), 1, capacity))
    if not packed:
        raise ValueError("the validation split is shorter than one row; use a larger corpus")
    batch = np.concatenate([b for b, _ in packed])
    scored = np.concatenate([s for _, s in packed])
    wanted = profile.eval_tokens // profile.max_seq_len
    if len(batch) > wanted:
        keep = np.unique(np.linspace(0, len(batch) - 1, wanted).round().astype(np.int64))
        batch, scored = batch[keep], scored[keep]
    inputs, targets = split_rows(batch, scored)
    return inputs.astype(np.int32), targets.astype(np.int32)
