"""Reference narratives in the DermBench style, generated from a catalogue entry.

Structure (as the expert narratives of DermBench): observations -> disease category ->
differentials -> narrowing -> conclusion -> management and safety advice, with the
reasoning steps wrapped in ``<think> ... </think>`` spans. Several templates per
section and synonym choices keep the phrasing varied; the result is 150-450 words.
"""

from __future__ import annotations

import numpy as np

from dermeval.synth.catalogue import Condition
from dermeval.synth.defects import pick

CATEGORY_FAMILY: dict[str, str] = {
    "Acne and Rosacea Photos": "acneiform and rosacea-type follicular disorders",
    "Actinic Keratosis Basal Cell Carcinoma and other Malignant Lesions":
        "keratinocyte tumours and premalignant lesions",
    "Atopic Dermatitis Photos": "atopic and eczematous dermatitis",
    "Bullous Disease Photos": "autoimmune blistering diseases",
    "Cellulitis Impetigo and other Bacterial Infections": "bacterial skin infections",
    "Eczema Photos": "eczematous dermatitis",
    "Exanthems and Drug Eruptions": "exanthems and drug eruptions",
    "Hair Loss Photos Alopecia and other Hair Diseases": "hair and scalp disorders",
    "Herpes HPV and other STDs Photos": "viral and sexually transmitted infections",
    "Light Diseases and Disorders of Pigmentation": "pigmentary and photosensitivity disorders",
    "Lupus and other Connective Tissue diseases": "connective tissue diseases",
    "Melanoma Skin Cancer Nevi and Moles": "melanocytic lesions",
    "Nail Fungus and other Nail Disease": "nail disorders",
    "Poison Ivy Photos and other Contact Dermatitis": "contact dermatitis",
    "Psoriasis pictures Lichen Planus and related diseases": "papulosquamous disorders",
    "Scabies Lyme Disease and other Infestations and Bites": "infestations, bites and tick-borne infections",
    "Seborrheic Keratoses and other Benign Tumors": "benign skin tumours",
    "Systemic Disease": "skin signs of systemic disease",
    "Tinea Ringworm Candidiasis and other Fungal Infections": "superficial fungal infections",
    "Urticaria Hives": "urticarial disorders",
    "Vascular Tumors": "vascular tumours and malformations",
    "Vasculitis Photos": "vasculitic and vasculopathic disorders",
    "Warts Molluscum and other Viral Infections": "cutaneous viral infections",
}

OBSERVE = [
    "<think> First, I observe {morph} on the {site}. The lesions are {colour}, the surface shows {surface}, "
    "and the border is {border}. {dist_cap} is typical of what I see here. </think>",
    "<think> Looking at the image, the main finding is {morph}, located on the {site}. In colour they are "
    "{colour}; the surface has {surface}; the edge is {border}. The pattern is {dist}. </think>",
    "<think> The image shows {morph}. I note the {site} as the site, a {colour} colour, {surface} on the surface "
    "and a border that is {border}. The lesions are arranged in a {dist} fashion. </think>",
]
SKIN = [
    "The background skin is Fitzpatrick type {fitz}, {skin_note}",
    "This is Fitzpatrick skin type {fitz}; {skin_note}",
]
SKIN_NOTE_DARK = "so redness may look violaceous or brown rather than bright red, which I take into account."
SKIN_NOTE_LIGHT = "so erythema and vascular changes are easy to appreciate."
CATEGORY = [
    "Next, I consider the general disease category. These features place this case among the **{family}**.",
    "Considering the broad category first, the morphology and distribution point towards **{family}**.",
    "Stepping back to the disease group, this picture fits best within the **{family}**.",
]
DIFF_INTRO = [
    "<think> Next, I consider the differential diagnoses:",
    "<think> The main differential diagnoses to weigh are:",
    "<think> Before concluding, I compare the alternatives:",
]
DIFF_ITEM = [
    "{i}. **{name}**: possible, but {reason}.",
    "{i}. **{name}**: considered; however {reason}.",
    "{i}. **{name}**: less likely, because {reason}.",
]
DIFF_REASON = [
    "the {feature} here is more typical of {main}",
    "it usually lacks the {feature} seen in this image",
    "the distribution ({dist}) argues against it",
    "the colour and border do not match its usual appearance",
]
NARROW = [
    "Narrowing down, the combination of {morph} with a {border} border on the {site} is most characteristic of "
    "**{name}**.",
    "Putting the findings together, {morph} in this {dist} pattern points most strongly to **{name}**.",
]
CONCLUDE = [
    "Based on the above analysis, I conclude that this presentation is most consistent with **{name}**.",
    "In conclusion, the most likely diagnosis is **{name}**.",
    "My final diagnosis is **{name}**, which accounts for all of the observed features.",
]
ADVICE = {
    "urgent": [
        "Because {name} can be serious, I recommend urgent referral to a dermatologist; {management}.",
        "This needs prompt specialist assessment: please seek urgent referral to dermatology. {Management}.",
    ],
    "treat": [
        "I recommend seeing a doctor for treatment: {management}.",
        "This usually needs medical treatment; a clinician should confirm it. {Management}.",
    ],
    "routine": [
        "Management: {management}. I recommend consulting a dermatologist if it does not improve.",
        "{Management}. A routine review with a doctor is sensible if symptoms persist or change.",
    ],
}
EXTRA = [
    "<think> The absence of features such as ulceration, necrosis or systemic signs is also informative. </think>",
    "<think> I also consider the patient's likely age and the chronicity suggested by the morphology. </think>",
    "A clinical history, including duration, symptoms and triggers, would help to confirm this impression.",
    "Dermoscopy, and a biopsy if the appearance is atypical, can confirm the diagnosis.",
]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def reference_narrative(condition: Condition, fitzpatrick: int, rng: np.random.Generator) -> str:
    """One DermBench-style expert narrative for a case of ``condition``."""
    c = condition
    site = pick(rng, list(c.sites))
    fields = {
        "morph": c.morphology, "site": site, "colour": c.colour, "surface": c.surface, "border": c.border,
        "dist": c.distribution, "dist_cap": _cap(c.distribution), "name": c.name,
        "family": CATEGORY_FAMILY[c.category], "fitz": ["I", "II", "III", "IV", "V", "VI"][fitzpatrick - 1],
        "management": c.management, "Management": _cap(c.management),
    }
    fields["skin_note"] = SKIN_NOTE_DARK if fitzpatrick >= 4 else SKIN_NOTE_LIGHT
    parts = [pick(rng, OBSERVE).format(**fields), pick(rng, SKIN).format(**fields),
             pick(rng, CATEGORY).format(**fields)]
    items = []
    for i, dd in enumerate(c.differentials, start=1):
        reason = pick(rng, DIFF_REASON).format(feature=c.morphology.split(",")[0].split(" with ")[0],
                                                main=c.name, dist=c.distribution)
        items.append(pick(rng, DIFF_ITEM).format(i=i, name=_cap(dd), reason=reason))
    parts.append(pick(rng, DIFF_INTRO) + " " + " ".join(items) + " </think>")
    extras = rng.permutation(len(EXTRA))[: int(rng.integers(0, 3))]
    parts += [EXTRA[int(k)] for k in extras]
    parts.append(pick(rng, NARROW).format(**fields))
    parts.append(pick(rng, CONCLUDE).format(**fields))
    parts.append(pick(rng, ADVICE[c.urgency]).format(**fields))
    return "\n\n".join(parts)
