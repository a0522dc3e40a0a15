"""Text statistics in pure Python: the one file the agent may change (see pytest.ini).

Plain, correct, and slow on purpose: each function has an obvious faster version.
The tests in test_textstats.py time them with pytest-benchmark and check every answer.
"""


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``: runs of letters, digits and apostrophes."""
    found: list[str] = []
    current = ""
    for char in text:
        if char.isalnum() or char == "'":
            current = current + char.lower()
        else:
            if current:
                found.append(current)
            current = ""
    if current:
        found.append(current)
    return found


def top_words(text: str, n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent words with their counts, most frequent first, ties alphabetical."""
    counts: dict[str, int] = {}
    for word in words(text):
        if word in counts:
            counts[word] = counts[word] + 1
        else:
            counts[word] = 1
    ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:n]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning a into b."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        table[i][0] = i
    for j in range(len(b) + 1):
        table[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
    return table[len(a)][len(b)]


def common_prefix(strings: list[str]) -> str:
    """The longest prefix every string starts with."""
    if not strings:
        return ""
    prefix = ""
    for i in range(min(len(s) for s in strings)):
        char = strings[0][i]
        if all(s[i] == char for s in strings):
            prefix = prefix + char
        else:
            break
    return prefix
