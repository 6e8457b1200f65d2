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
from dermeval.synth.wording import expand

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

# Templates use ``[a|b|c]`` choices (see :mod:`dermeval.synth.wording`): every sentence has
# dozens to thousands of phrasings, so held-out cases do not share their sentences verbatim
# with the training cases and a model cannot score by recognising the generator's wording.
OBSERVE = [
    "<think> [First|To begin|Initially], I [observe|note|see] {morph} on the {site}. The lesions are {colour}, "
    "the surface [shows|has] {surface}, and the [border|margin|edge] is {border}. {dist_cap} is [typical of|what "
    "stands out in|characteristic of] [what I see here|this picture|the image]. </think>",
    "<think> [Looking at|Examining|Studying] the [image|photograph|picture], the [main|dominant|key] finding is "
    "{morph}, [located|situated|seen] on the {site}. In colour they are {colour}; the surface has {surface}; the "
    "[edge|border|margin] is {border}. The [pattern|arrangement] is {dist}. </think>",
    "<think> The [image|photo|picture] shows {morph}. I [note|record|take] the {site} as the site, a {colour} "
    "[colour|tone|hue], {surface} on the surface and a [border|margin|edge] that is {border}. The lesions are "
    "[arranged|distributed|spread] in a {dist} [fashion|pattern|way]. </think>",
]
SKIN = [
    "The [background|surrounding|underlying] skin is Fitzpatrick type {fitz}, {skin_note}",
    "This is Fitzpatrick skin type {fitz} [on the {site}|in this patient|here]; {skin_note}",
]
SKIN_NOTE_DARK = ("so [redness|erythema|inflammation] may [look|appear|show as] [violaceous|dusky|brown] rather than "
                  "bright red, which I [take into account|keep in mind|allow for].")
SKIN_NOTE_LIGHT = ("so [erythema|redness] and vascular changes are [easy|straightforward|simple] to "
                   "[appreciate|see|judge] [here|in this image|on the {site}].")
CATEGORY = [
    "[Next|Then|Now|At this point], I [consider|turn to|look at|think about] the [general|broad|overall|likely] "
    "disease [category|group|family][ for this {site} lesion| for the changes on the {site}| of this {colour} "
    "eruption|]. [These features|The findings|This picture|What I see] [place|put|locate] this case among the "
    "**{family}**.",
    "Considering the [broad|general|wider] category first, the [morphology|appearance|lesion type] and "
    "[distribution|pattern|arrangement] [on the {site}|of the lesions|here|] point towards **{family}**.",
    "Stepping back to the disease group, this [picture|presentation|case] [on the {site}|in a {colour} tone|] "
    "[fits best|sits most naturally|belongs] within the **{family}**.",
]
DIFF_INTRO = [
    "<think> [Next|Then|Now], I consider the differential diagnoses:",
    "<think> The [main|principal|key] differential diagnoses to [weigh|consider|compare] are:",
    "<think> Before concluding, I [compare|weigh|review] the alternatives:",
]
DIFF_ITEM = [
    "{i}. **{name}**: [possible|conceivable|worth a thought], but {reason}.",
    "{i}. **{name}**: [considered|reviewed|kept in mind]; however {reason}.",
    "{i}. **{name}**: [less likely|not favoured|a weaker fit], because {reason}.",
]
DIFF_REASON = [
    "the {feature} [here|in this image|on the {site}] is more [typical|suggestive|characteristic] of {main}",
    "it [usually|typically|generally] lacks the {feature} seen [in this image|here|on the {site}]",
    "the [distribution|pattern|arrangement] ({dist}) [argues|speaks|counts] against it",
    "the [colour|tone] and [border|margin|edge] do not match its [usual|typical|expected] appearance",
]
NARROW = [
    "[Narrowing down|Narrowing the list|Refining this], the combination of {morph} with a {border} border on the "
    "{site} is [most characteristic|most typical|most suggestive] of **{name}**.",
    "[Putting the findings together|Taking everything together|Combining these findings], {morph} in this {dist} "
    "pattern points [most strongly|most clearly|best] to **{name}**.",
]
CONCLUDE = [
    "[Based on the above analysis|On the basis of these findings|Given this reasoning], I conclude that this "
    "[presentation|case|picture] is most consistent with **{name}**.",
    "In conclusion, the [most likely|most probable|leading] diagnosis [is|here is|for this {site} lesion is] "
    "**{name}**.",
    "My final diagnosis is **{name}**, which [accounts for|explains|fits] [all of the observed features|the "
    "findings on the {site}|the whole picture].",
]
MANAGE = "[Management|Treatment|Care|Suggested management|Usual management][:| would be:| here:] {management}."
ADVICE = {
    "urgent": [
        "Because {name} can be serious, I [recommend|advise|would arrange] [urgent|prompt|early] referral to a "
        "[dermatologist|skin specialist|dermatology service][ this week| without delay|]; {management}.",
        "This needs [prompt|urgent|rapid] specialist assessment[ of the {site} lesion|]: please seek [urgent|prompt] "
        "referral to dermatology[ without waiting| as a priority|]. " + MANAGE,
    ],
    "treat": [
        "I recommend seeing a [doctor|GP|clinician|dermatologist] for treatment[ soon| in the coming days| of the "
        "{site}|]: {management}.",
        "This [usually|generally|typically] needs medical treatment; a [clinician|doctor|GP|dermatologist] should "
        "[confirm it|confirm the diagnosis|review it][ first| before treatment starts| in person|]. " + MANAGE,
    ],
    "routine": [
        MANAGE + " I [recommend|suggest|would advise] [consulting|seeing] a [dermatologist|doctor|GP] if [it|the "
        "rash|the {site} lesion|the change] does not [improve|settle|get better][ within a few weeks| over the next "
        "month| with these measures|].",
        MANAGE + " A [routine|non-urgent] review with a [doctor|GP|clinician] is sensible if [symptoms|the "
        "lesions|things|the {site} changes] [persist or change|do not settle|get worse|spread].",
    ],
}
EXTRA = [
    "<think> The absence of features such as [ulceration|erosion|bleeding], [necrosis|crusting|pustules] or "
    "[systemic signs|fever|lymphadenopathy] is also [informative|helpful|relevant] [for the {site}|here|]. </think>",
    "<think> I also consider the patient's likely [age|age group|background] and the [chronicity|duration|time "
    "course] suggested by the [morphology|appearance] [on the {site}|of the {colour} lesions|]. </think>",
    "A [clinical|fuller|detailed] history, including [duration|onset], [symptoms|itch or pain] and [triggers|"
    "exposures], would help to [confirm|support|test] this [impression|diagnosis].",
    "[Dermoscopy|Close inspection with dermoscopy|A dermoscopic look] [of the {site}|at the {colour} "
    "areas|], and a biopsy if the [appearance|picture] is [atypical|uncertain|unclear], can [confirm|settle|"
    "secure] the diagnosis.",
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
    fields["skin_note"] = expand(SKIN_NOTE_DARK if fitzpatrick >= 4 else SKIN_NOTE_LIGHT, rng, **fields)

    def say(options: list[str], **extra: str) -> str:
        return expand(pick(rng, options), rng, **fields, **extra)

    parts = [say(OBSERVE), say(SKIN), say(CATEGORY)]
    items = []
    feature = c.morphology.split(",")[0].split(" with ")[0]
    for i, dd in enumerate(c.differentials, start=1):
        reason = say(DIFF_REASON, feature=feature, main=c.name)
        items.append(expand(pick(rng, DIFF_ITEM), rng, i=str(i), name=_cap(dd), reason=reason))
    # Layout varies as it does between writers (inline or one item per line, blank lines or
    # not), so layout carries no signal about quality.
    item_sep = "\n" if rng.random() < 0.5 else " "
    parts.append(say(DIFF_INTRO) + item_sep + item_sep.join(items) + " </think>")
    extras = rng.permutation(len(EXTRA))[: int(rng.integers(0, 3))]
    parts += [say([EXTRA[int(k)]]) for k in extras]
    parts += [say(NARROW), say(CONCLUDE), say(ADVICE[c.urgency])]
    return ("\n\n" if rng.random() < 0.7 else "\n").join(parts)
