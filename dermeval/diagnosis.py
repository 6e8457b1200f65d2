"""Which DermBench category a narrative's diagnosis belongs to, from a dermatology vocabulary.

The evaluator's network reads sentences through a small frozen encoder; it cannot know
that "verruca vulgaris" is a wart or that "Gianotti-Crosti" is a viral exanthem. This
module makes that knowledge explicit. A :class:`DiagnosisVocabulary` holds diagnosis
names with the category each belongs to, from three sources:

- **ICD-10-CM** (the ``simple-icd-10-cm`` package's April 2026 tabular list): the
  description and inclusion terms of every code under a dermatology range, each range
  mapped here (:data:`ICD_CATEGORY`) to one of the 23 categories;
- the **catalogue** names and aliases of the simulator's conditions, passed in by the
  caller (the core never imports the simulator);
- **learned names**: the diagnoses expert narratives of the training split name, with
  their case's category (so DermBench's own vocabulary, abbreviations and spellings).

``classify`` finds the diagnosis in free text (the longest known name, first in the
sentence), else falls back to a naive-Bayes vote of the text's words over the whole
vocabulary. The vocabulary is saved as JSON beside the evaluator's weights.

Longer than 300 lines: the ICD-10-CM range table (:data:`ICD_CATEGORY`, about 60 lines of
data) sits beside the vocabulary that reads it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermeval.schema import DERMBENCH_CATEGORIES

VOCABULARY_FILE = "vocabulary.json"
MAX_PHRASE = 7  # tokens in the longest name looked for in free text

# ICD-10-CM code prefixes -> DermBench category (the longest matching prefix wins).
ACNE, MALIGNANT, ATOPIC, BULLOUS, BACTERIAL, ECZEMA, EXANTHEM, HAIR, STD, LIGHT, LUPUS, MELANOMA, NAIL, \
    CONTACT, PSORIASIS, INFESTATION, BENIGN, SYSTEMIC, FUNGAL, URTICARIA, VASCULAR_TUMOUR, VASCULITIS, VIRAL = \
    DERMBENCH_CATEGORIES
ICD_CATEGORY: dict[str, str] = {
    # Acne, rosacea and follicular disease
    "L70": ACNE, "L71": ACNE, "L73.0": ACNE, "L73.2": ACNE, "L73.1": ACNE, "L74.0": ACNE,
    # Actinic keratosis, keratinocyte and other skin cancers
    "L57.0": MALIGNANT, "C44": MALIGNANT, "C4A": MALIGNANT, "D04": MALIGNANT, "C84.0": MALIGNANT,
    "C84.1": MALIGNANT, "C49": MALIGNANT, "D48.5": MALIGNANT, "L85.8": MALIGNANT,
    "L20": ATOPIC,
    "L10": BULLOUS, "L11": BULLOUS, "L12": BULLOUS, "L13": BULLOUS, "L14": BULLOUS, "Q81": BULLOUS,
    "L00": BACTERIAL, "L01": BACTERIAL, "L02": BACTERIAL, "L03": BACTERIAL, "L04": BACTERIAL,
    "L05": BACTERIAL, "L08": BACTERIAL, "A46": BACTERIAL, "A30": BACTERIAL, "A31": BACTERIAL,
    "A18.4": BACTERIAL, "L73.9": BACTERIAL, "A48.0": BACTERIAL, "A36.3": BACTERIAL, "L98.0": VASCULAR_TUMOUR,
    "L30": ECZEMA, "L28": ECZEMA, "L22": ECZEMA, "L21": PSORIASIS, "L85.3": ECZEMA, "I87.2": ECZEMA,
    "L27": EXANTHEM, "L51": EXANTHEM, "L26": EXANTHEM, "L53": EXANTHEM, "B05": EXANTHEM, "B06": EXANTHEM,
    "B08.3": EXANTHEM, "B08.2": EXANTHEM, "B09": EXANTHEM, "L52": EXANTHEM, "L56.0": EXANTHEM, "L56.1": EXANTHEM,
    "L63": HAIR, "L64": HAIR, "L65": HAIR, "L66": HAIR, "L67": HAIR, "L68": HAIR, "L73.8": HAIR,
    "A50": STD, "A51": STD, "A52": STD, "A53": STD, "A54": STD, "A55": STD, "A56": STD, "A57": STD,
    "A58": STD, "A60": STD, "A63": STD, "A64": STD, "B00": STD, "B20": STD,
    "L80": LIGHT, "L81": LIGHT, "L55": LIGHT, "L56": LIGHT, "L57": LIGHT, "L58": LIGHT, "L59": LIGHT,
    "E80": LIGHT, "E70.3": LIGHT,
    "M32": LUPUS, "L93": LUPUS, "M33": LUPUS, "M34": LUPUS, "M35": LUPUS, "L94": LUPUS, "L90.0": LUPUS,
    "C43": MELANOMA, "D03": MELANOMA, "D22": MELANOMA, "Q82.5": VASCULAR_TUMOUR,
    "L60": NAIL, "L62": NAIL, "B35.1": NAIL, "L03.0": NAIL,
    "L23": CONTACT, "L24": CONTACT, "L25": CONTACT,
    "L40": PSORIASIS, "L41": PSORIASIS, "L42": PSORIASIS, "L43": PSORIASIS, "L44": PSORIASIS,
    "L85.0": PSORIASIS, "L87": PSORIASIS, "L11.1": PSORIASIS,
    "B86": INFESTATION, "A69.2": INFESTATION, "B85": INFESTATION, "B87": INFESTATION, "B88": INFESTATION,
    "B76": INFESTATION, "B55": INFESTATION, "W57": INFESTATION, "T63": INFESTATION, "A75": INFESTATION,
    "A77": INFESTATION,
    "L82": BENIGN, "D23": BENIGN, "D17": BENIGN, "L72": BENIGN, "L91": BENIGN, "D21": BENIGN, "D18.0": VASCULAR_TUMOUR,
    "L85.1": BENIGN, "L85.2": BENIGN, "L11.0": BENIGN, "D36.1": BENIGN, "L90.5": BENIGN, "L84": BENIGN,
    "D86": SYSTEMIC, "E85": SYSTEMIC, "L92": SYSTEMIC, "L83": SYSTEMIC, "E78": SYSTEMIC, "E75": SYSTEMIC,
    "L88": SYSTEMIC, "E05": SYSTEMIC, "E11.6": SYSTEMIC, "L98.5": SYSTEMIC, "Q85": SYSTEMIC, "L94.2": SYSTEMIC,
    "E83.0": SYSTEMIC, "D69": VASCULITIS,
    "B35": FUNGAL, "B36": FUNGAL, "B37": FUNGAL, "B38": FUNGAL, "B39": FUNGAL, "B40": FUNGAL, "B41": FUNGAL,
    "B42": FUNGAL, "B43": FUNGAL, "B44": FUNGAL, "B45": FUNGAL, "B46": FUNGAL, "B47": FUNGAL, "B48": FUNGAL,
    "B49": FUNGAL,
    "L50": URTICARIA, "T78.3": URTICARIA, "D84.1": URTICARIA, "Q82.2": URTICARIA,
    "D18": VASCULAR_TUMOUR, "I78": VASCULAR_TUMOUR, "C46": VASCULAR_TUMOUR, "Q27.3": VASCULAR_TUMOUR,
    "I86": VASCULAR_TUMOUR, "D48.1": VASCULAR_TUMOUR,
    "L95": VASCULITIS, "M31": VASCULITIS, "M30": VASCULITIS, "I77.6": VASCULITIS, "D69.0": VASCULITIS,
    "L53.8": VASCULITIS, "I73.0": VASCULITIS, "R23.1": VASCULITIS,
    "B07": VIRAL, "B08": VIRAL, "B01": VIRAL, "B02": VIRAL, "B08.1": VIRAL, "B08.4": VIRAL, "B08.0": VIRAL,
    "A63.0": VIRAL,
}

# How a clinician would name each category in a sentence.
CATEGORY_LABELS: dict[str, str] = {
    ACNE: "acne and rosacea group", MALIGNANT: "actinic keratosis and skin cancer group",
    ATOPIC: "atopic dermatitis", BULLOUS: "bullous disease group", BACTERIAL: "bacterial infection group",
    ECZEMA: "eczema group", EXANTHEM: "exanthem and drug eruption group", HAIR: "hair disease group",
    STD: "herpes and sexually transmitted infection group", LIGHT: "light-induced and pigmentary group",
    LUPUS: "lupus and connective tissue group", MELANOMA: "melanoma and naevus group", NAIL: "nail disease group",
    CONTACT: "contact dermatitis group", PSORIASIS: "psoriasis and lichen planus group",
    INFESTATION: "infestation and bite group", BENIGN: "benign tumour group", SYSTEMIC: "systemic disease group",
    FUNGAL: "fungal infection group", URTICARIA: "urticaria", VASCULAR_TUMOUR: "vascular tumour group",
    VASCULITIS: "vasculitis group", VIRAL: "viral infection group (warts, molluscum)",
}


def label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category)


# Words that say how sure or how typical, not which disease.
_STOP = frozenset((
    "a", "an", "the", "of", "with", "and", "or", "in", "on", "to", "by", "for", "at", "as", "from", "is",
    "are", "be", "was", "were", "its", "it", "this", "that", "most", "more", "likely", "probable", "probably",
    "possible", "possibly", "consistent", "suggestive", "suggest", "suggests", "diagnosis", "diagnoses",
    "impression", "conclusion", "final", "condition", "disease", "disorder", "features", "feature",
    "unspecified", "other", "type", "form", "variant", "presentation", "case", "classic", "typical", "due",
    "secondary", "primary", "site", "sites", "part", "parts", "left", "right", "upper", "lower", "limb",
    "limbs", "specified", "elsewhere", "classified", "not", "nos",
))
_TOKEN = re.compile(r"[a-z0-9]+")


_KEEP = frozenset(("scabies", "rabies", "species", "herpes", "pemphigus", "lupus", "mycosis", "psoriasis"))


def _stem(tok: str) -> str:
    if len(tok) <= 3 or tok.isdigit() or tok in _KEEP:
        return tok
    if tok.endswith("oses"):
        return tok[:-2] + "is"
    if tok.endswith("ies"):
        return tok[:-3] + "y"
    if tok.endswith("s") and not tok.endswith(("ss", "us", "is", "os", "es")):
        return tok[:-1]
    return tok


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("'s", "  ")


def tokens(text: str) -> list[str]:
    """Lower-case, accent-free, stemmed word tokens, with every token kept (stop words too)."""
    return [_stem(t) for t in _TOKEN.findall(_ascii(text))]


def name_key(text: str) -> tuple[str, ...]:
    """A diagnosis name as a lookup key: its content tokens, in order."""
    return tuple(t for t in tokens(text) if t not in _STOP)


@functools.cache
def _icd_terms() -> tuple[tuple[str, str, str], ...]:
    import simple_icd_10_cm as cm  # parses the tabular list at import (about 4 s); only building needs it

    lengths = sorted({len(p) for p in ICD_CATEGORY}, reverse=True)
    out: list[tuple[str, str, str]] = []
    for code in cm.get_all_codes(with_dots=True):
        if not cm.is_category_or_subcategory(code):
            continue
        category = next((ICD_CATEGORY[code[:n]] for n in lengths if code[:n] in ICD_CATEGORY), None)
        if category is None:
            continue
        desc = cm.get_description(code)
        for term in {desc, desc.split(",")[0], *cm.get_inclusion_term(code)}:
            out.append((term, category, code))
    return tuple(out)


def icd_terms() -> list[tuple[str, str, str]]:
    """``(term, category, code)`` for every ICD-10-CM code under a mapped range (the longest mapped
    prefix decides): the description (the part before a comma qualifier, and the whole) and the
    inclusion terms. Read once per process."""
    return list(_icd_terms())


@dataclass(frozen=True)
class Match:
    """What :meth:`DiagnosisVocabulary.classify` found."""

    name: str | None            # the known name found in the text (None: a word vote, no exact name)
    probs: tuple[float, ...]    # a distribution over the vocabulary's categories
    confidence: float           # 0 when nothing in the text is a known diagnosis word

    def best(self, categories: Sequence[str]) -> str | None:
        return categories[max(range(len(self.probs)), key=self.probs.__getitem__)] if self.confidence > 0 else None


class DiagnosisVocabulary:
    """Diagnosis names -> category counts, with a word-level fallback."""

    def __init__(self, categories: Sequence[str], names: dict[tuple[str, ...], Counter[str]],
                 sources: dict[str, int] | None = None) -> None:
        self.categories = list(categories)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.names = names
        self.sources = dict(sources or {})
        word = defaultdict(Counter)
        for key, counts in names.items():
            for t in set(key):
                for cat, n in counts.items():
                    word[t][cat] += n
        self.word = {t: c for t, c in word.items()}
        self.total = Counter()
        for counts in names.values():
            self.total.update(counts)

    # --- building ------------------------------------------------------------------
    @classmethod
    def build(cls, *, categories: Sequence[str] = DERMBENCH_CATEGORIES, icd: bool | list = True,
              catalogue: Iterable[tuple[str, str]] = (), learned: Iterable[tuple[str, str]] = (),
              learned_weight: float = 3.0) -> DiagnosisVocabulary:
        """``catalogue`` and ``learned`` are ``(name, category)`` pairs; a learned name counts
        ``learned_weight`` times a coded term (experts' usage outranks a coding convention).
        ``icd`` may be the list :func:`icd_terms` returned (to build several vocabularies)."""
        names: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        sources: Counter[str] = Counter()
        known = set(categories)

        def add(term: str, category: str, weight: float, source: str) -> None:
            key = name_key(term)
            if key and category in known and len(key) <= MAX_PHRASE:
                names[key][category] += weight
                sources[source] += 1

        if icd:
            for term, category, _ in (icd if isinstance(icd, list) else icd_terms()):
                add(term, category, 1.0, "icd10cm")
        for term, category in catalogue:
            add(term, category, 2.0, "catalogue")
        for term, category in learned:
            add(term, category, learned_weight, "learned")
        return cls(categories, dict(names), dict(sources))

    # --- persistence ---------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"categories": self.categories, "sources": self.sources,
                "names": [[" ".join(k), dict(sorted(v.items()))] for k, v in sorted(self.names.items())]}

    @classmethod
    def from_dict(cls, d: dict) -> DiagnosisVocabulary:
        names = {tuple(k.split()): Counter(v) for k, v in d["names"]}
        return cls(d["categories"], names, d.get("sources"))

    def save(self, folder: Path | str) -> Path:
        path = Path(folder) / VOCABULARY_FILE
        path.write_text(json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path | str) -> DiagnosisVocabulary | None:
        path = Path(folder) / VOCABULARY_FILE
        return cls.from_dict(json.loads(path.read_text("utf-8"))) if path.is_file() else None

    # --- lookup --------------------------------------------------------------------
    def _dist(self, counts: Counter[str]) -> tuple[float, ...]:
        total = sum(counts.values())
        return tuple(counts.get(c, 0.0) / total for c in self.categories)

    def find_name(self, text: str) -> tuple[tuple[str, ...], str] | None:
        """The longest known name in the text (the first of equally long ones): its key and the
        words as the text writes them. A longer name is the more specific diagnosis ("erythema
        nodosum" over "erythema")."""
        low = _ascii(text)
        found = [(_stem(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(low)]
        found = [f for f in found if f[0] not in _STOP]
        toks = [f[0] for f in found]
        best: tuple[int, int] | None = None  # (length, start)
        for i in range(len(toks)):
            for n in range(min(MAX_PHRASE, len(toks) - i), 0, -1):
                key = tuple(toks[i:i + n])
                if key in self.names and (n > 1 or self._specific(key[0])):
                    if best is None or n > best[0]:
                        best = (n, i)
                    break
        if best is None:
            return None
        n, i = best
        return tuple(toks[i:i + n]), " ".join(low[found[i][1]:found[i + n - 1][2]].split())

    def _specific(self, tok: str) -> bool:
        """A one-word name counts only when the word points at one category more than at chance."""
        counts = self.word.get(tok)
        if not counts:
            return False
        return max(counts.values()) / sum(counts.values()) >= 0.5

    def vote(self, text: str) -> tuple[tuple[float, ...], float]:
        """Naive-Bayes vote of the text's known words; confidence 0 when none is known."""
        known = [t for t in dict.fromkeys(name_key(text)) if t in self.word]
        if not known:
            return tuple(1.0 / len(self.categories) for _ in self.categories), 0.0
        grand = sum(self.total.values())
        logp = []
        for c in self.categories:
            lp = math.log((self.total.get(c, 0.0) + 1.0) / (grand + len(self.categories)))
            for t in known:
                counts = self.word[t]
                lp += math.log((counts.get(c, 0.0) + 0.1) / (self.total.get(c, 0.0) + 0.1 * len(self.word)))
            logp.append(lp)
        top = max(logp)
        w = [math.exp(x - top) for x in logp]
        s = sum(w)
        probs = tuple(x / s for x in w)
        return probs, max(probs)

    def classify(self, text: str) -> Match:
        """The diagnosis ``text`` names, as a distribution over the categories."""
        hit = self.find_name(text)
        if hit is not None:
            probs = self._dist(self.names[hit[0]])
            return Match(hit[1], probs, max(probs))
        probs, conf = self.vote(text)
        return Match(None, probs, conf)

    def conclusion(self, sentence: str) -> Match:
        """The diagnosis a conclusion sentence states: its bold term when it sets one and the term
        is a known name, else the longest known name in the sentence (no word vote)."""
        term = conclusion_term(sentence)
        for text in ([term] if term else []) + [sentence]:
            hit = self.find_name(text)
            if hit is not None:
                probs = self._dist(self.names[hit[0]])
                return Match(hit[1], probs, max(probs))
        return Match(None, tuple(0.0 for _ in self.categories), 0.0)

    def category(self, text: str) -> str | None:
        return self.classify(text).best(self.categories)


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"(final |diagnostic |clinical |most likely |differential )?"
                      r"(conclusion|diagnosis|impression|summary|assessment)s?", re.I)


def conclusion_term(sentence: str) -> str | None:
    """The diagnosis a conclusion sentence sets in bold (headings such as **Conclusion** skipped)."""
    for term in _BOLD.findall(sentence):
        term = term.strip(" :.")
        if 2 < len(term) < 60 and not _HEADING.fullmatch(term):
            return term
    return None


def category_features(texts: Sequence[str], vocab: DiagnosisVocabulary | None, categories: Sequence[str]
                      ) -> np.ndarray:
    """Per conclusion sentence: the vocabulary's category distribution over ``categories`` and its
    weight (1 for a known name; 0 when the sentence names nothing the vocabulary knows, or there is
    no vocabulary: the learned text head then decides alone), shape ``(n, len(categories) + 1)``."""
    out = np.zeros((len(texts), len(categories) + 1), np.float32)
    if vocab is None:
        return out
    pos = [vocab.index.get(c, -1) for c in categories]
    for i, text in enumerate(texts):
        if not text:
            continue
        m = vocab.conclusion(text)
        probs = np.array([m.probs[p] if p >= 0 else 0.0 for p in pos], np.float32)
        if m.name is None or probs.sum() <= 0:
            continue
        out[i, :-1] = probs / probs.sum()
        out[i, -1] = 1.0
    return out


def held_out_coverage(pairs: Sequence[tuple[str, str]], *, folds: int = 5, seed: int = 0,
                      catalogue: Iterable[tuple[str, str]] = (), icd: bool = True, learn: bool = True,
                      categories: Sequence[str] = DERMBENCH_CATEGORIES) -> dict:
    """How well the vocabulary maps conclusions of cases it was not built from to their category.

    ``pairs`` are one ``(conclusion name, category)`` per case. The cases are cut into ``folds``;
    each fold is classified by a vocabulary learned from the other folds (plus ICD-10-CM and
    ``catalogue``; ``learn=False`` learns nothing from the release). Reported: over distinct
    conclusions (a name's answer is the category most of its held-out cases carry; ties accept
    any), over cases, and over names no build case used, with the ceiling a map could reach on
    cases at all (a name filed under several categories can be right for only one of them).
    """
    catalogue = list(catalogue)
    icd_list = icd_terms() if icd else []
    fold = np.random.default_rng(seed).integers(0, folds, len(pairs))
    per_name: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for name, cat in pairs:
        per_name[name_key(name)][cat] += 1
    ceiling = sum(per_name[name_key(n)].most_common(1)[0][0] == c for n, c in pairs) / max(len(pairs), 1)
    hits = {"distinct": [], "cases": [], "unseen": []}
    misses: list[dict[str, str]] = []
    for f in range(folds):
        build = [pairs[i] for i in range(len(pairs)) if fold[i] != f] if learn else []
        vocab = DiagnosisVocabulary.build(categories=categories, icd=icd_list, catalogue=catalogue, learned=build)
        seen = {name_key(n) for n, _ in build}
        held: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for i in np.flatnonzero(fold == f):
            name, cat = pairs[i]
            held[name_key(name)][cat] += 1
            hits["cases"].append(vocab.category(name) == cat)
        for key, counts in held.items():
            top = max(counts.values())
            right = {c for c, n in counts.items() if n == top}
            got = vocab.category(" ".join(key))
            hits["distinct"].append(got in right)
            if key not in seen:
                hits["unseen"].append(got in right)
                if got not in right and len(misses) < 40:
                    misses.append({"name": " ".join(key), "release": sorted(right)[0], "mapped": got or "-"})
    return {"folds": folds, "cases": len(pairs),
            **{f"{k}_n": len(v) for k, v in hits.items()},
            **{f"{k}_accuracy": round(float(np.mean(v)), 4) if v else None for k, v in hits.items()},
            "cases_ceiling": round(ceiling, 4), "sample_misses": misses}
