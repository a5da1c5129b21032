"""Text utilities: a PTB-style tokenizer matching SST-2's preprocessing, and a Vocab."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

# SST-2 text is lower-cased and PTB-tokenised ("ca n't", "it 's", "( film )"). User input is
# raw, so it gets the same treatment before lookup; otherwise "can't" would be one unknown word.
_CONTRACTIONS = [
    (re.compile(r"\b(ca)(n't)\b"), r"\1 \2"),
    (re.compile(r"\b(wo)(n't)\b"), r"\1 \2"),
    (re.compile(r"(\w)(n't)\b"), r"\1 \2"),
    (re.compile(r"(\w)('s|'re|'ve|'ll|'d|'m)\b"), r"\1 \2"),
]
_PUNCT = re.compile(r"""([.,!?;:()\[\]{}"]|--|\.\.\.)""")
# Control characters (NUL, the other C0 and C1 codes, DEL) are not text: read as spaces, so
# that "bad\0\0" is the word "bad" and not one unknown word glued to them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def tokenize(text: str, *, lower: bool = True) -> list[str]:
    """Split raw text into PTB-like tokens.

    >>> tokenize("I can't believe it's not butter!")
    ['i', 'ca', "n't", 'believe', 'it', "'s", 'not', 'butter', '!']
    """
    if lower:
        text = text.lower()
    text = _CONTROL.sub(" ", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = _PUNCT.sub(r" \1 ", text)
    return text.split()


def as_text(value: object, what: str) -> str:
    r"""`value` as a str, or InputError naming `what`: UTF-8 bytes are decoded, and a str that
    carries undecodable bytes (Python maps them to lone surrogates, e.g. in sys.argv) is refused.

    >>> as_text(b"caf\xc3\xa9", "text 0")
    'café'
    """
    from taskzoo.errors import InputError

    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(value, str):
        raise InputError(f"{what}: expected str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} is not valid UTF-8 (undecodable byte at character {exc.start})") from None
    return value


class Vocab:
    """Token <-> id with reserved <pad>=0 and <unk>=1.

    >>> v = Vocab.build([["a", "b", "a"]], min_freq=1)
    >>> v.encode(["a", "zzz"])
    [2, 1]
    """

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, tokens: Sequence[str]) -> None:
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(
        cls, texts: Iterable[Sequence[str]], *, min_freq: int = 1, max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> Vocab:
        """Ids by frequency in `texts`; `specials` (e.g. word-boundary marks) follow <pad>, <unk>."""
        counts = Counter(tok for toks in texts for tok in toks)
        # frequency then alphabetical: the same corpus always gives the same ids
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        reserved = [cls.PAD, cls.UNK, *specials]
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(reserved))]
        return cls([*reserved, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, tokens: Sequence[str]) -> list[int]:
        get = self.stoi.get
        return [get(t, 1) for t in tokens]

    def to_list(self) -> list[str]:
        return list(self.itos)

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> Vocab:
        if list(tokens[:2]) != [cls.PAD, cls.UNK]:
            raise ValueError("not a taskzoo vocabulary: expected <pad>, <unk> first")
        return cls(tokens)


# Raw text -> words the way UD English treebanks tokenise: punctuation on its own, clitics
# split off (do n't, it 's, we 're), but URLs, e-mail addresses, numbers like 3.5 / 10:30 /
# 713-853-3989, dotted abbreviations (U.S., e.g.) and common titles (Mr., Dr.) kept whole.
_WORD = re.compile(
    r"""(?:https?://|www\.)\S+?(?=[.,;:!?)\]"']*(?:\s|$))   # URL, trailing punctuation excluded
    | [\w.+-]+@\w[\w-]*(?:\.\w[\w-]*)+                       # e-mail address
    | (?:[A-Za-z]\.){2,}                                     # U.S.  e.g.  p.m.
    | (?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Jr|Mt|Ft|No|vs|etc|Inc|Ltd|Co|Corp|Jan|Feb|Aug|Sept?|Oct|Nov|Dec)\.(?!\w)
    | \d+(?:[.,:/-]\d+)+                                     # 3.5  1,000  10:30  1/2
    | \.{2,} | -{2,}                                         # ...  --
    | \w+(?:['\u2019]\w+)*                                   # words, inner apostrophes (see _CLITIC)
    | \S                                                     # any other symbol alone
    """,
    re.VERBOSE,
)
_CLITIC = re.compile(r"(?i)^(\w+?)(n['\u2019]t|['\u2019](?:s|re|ve|ll|d|m))$")
_FUSED = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "wanna": ("wan", "na"),
          "gotta": ("got", "ta")}


def split_words(text: str) -> list[str]:
    """Split raw text into words, UD English style; case is kept.

    >>> split_words("I can't believe it's $3.50 at Dr. Smith's -- e-mail me@x.org!")
    ['I', 'ca', "n't", 'believe', 'it', "'s", '$', '3.50', 'at', 'Dr.', 'Smith', "'s", '--', 'e', '-', 'mail', 'me@x.org', '!']
    """
    out: list[str] = []
    for tok in _WORD.findall(_CONTROL.sub(" ", text)):
        fused = _FUSED.get(tok.lower())
        clitic = _CLITIC.match(tok)
        if fused:
            out += [tok[: len(fused[0])], tok[len(fused[0]):]]
        elif clitic:
            out += [clitic.group(1), clitic.group(2)]
        else:
            out.append(tok)
    return out
