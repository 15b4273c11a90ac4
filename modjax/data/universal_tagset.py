"""Brown corpus tags -> the 12 universal part-of-speech tags.

The universal tagset (Petrov, Das and McDonald 2012, "A Universal Part-of-Speech Tagset") has
twelve coarse tags::

    VERB NOUN PRON ADJ ADV ADP CONJ DET NUM PRT X .

The published Brown mapping (``en-brown.map``, the file NLTK reads for
``brown.tagged_sents(tagset='universal')``) lists every tag that occurs in the corpus, compounds
included, and NLTK maps anything it does not list to ``X``. The table below re-states that mapping
compactly, written for this project:

* ``_SIMPLE``: the 80-odd simple Brown tags (with their possessive ``$`` forms, where the published
  mapping treats them specially);
* ``_CONTRACTIONS``: every ``+`` contraction that occurs in the corpus (``PPSS+MD`` = "I'll", ...);
* rules: the title/headline/cited-word suffixes ``-TL``, ``-HL`` and ``-NC`` do not change the
  coarse tag, ``*`` (negation, ``BEDZ*`` = "wasn't") does not change it, and every foreign-word tag
  ``FW-...`` is ``X``.

NLTK's corpus reader upper-cases the tag (``str2tuple``), so :func:`map_brown_tag` accepts tags in
either case. Checked against NLTK's published counts for ``brown.tagged_words(tagset='universal')``:
NOUN 275,558, VERB 182,750, . 147,565, ADP 144,766, DET 137,019, ADJ 83,721, ADV 56,239,
PRON 49,334, CONJ 38,151, PRT 29,829, NUM 14,874, X 1,386 (news category: NOUN 30,640 ... X 92);
``tests/test_data_brown_tags.py`` asserts these numbers.
"""
from __future__ import annotations

from typing import Dict

UNIVERSAL_TAGS = ("VERB", "NOUN", "PRON", "ADJ", "ADV", "ADP", "CONJ", "DET", "NUM", "PRT", "X", ".")

# Simple Brown tags (Francis & Kucera tag list) and their universal tag.
_SIMPLE: Dict[str, str] = {}


def _put(universal: str, tags: str) -> None:
    for t in tags.split():
        _SIMPLE[t] = universal


_put(".", "' '' ( ) , -- . : `` ---")  # punctuation ("---" is the dash of the "---HL" headline tag)
_put("ADV", "* QL QLP RB RBR RBT RN WQL WRB")
_put("PRT", "ABL ABN EX RP TO UH AP$ JJ$ RB$")
_put("DET", "ABX AT DT DTI DTS DTX DT$ PP$ WDT WP$")
_put("ADJ", "AP JJ JJR JJS JJT OD")
_put("VERB", "BE BED BEDZ BEG BEM BEN BER BEZ DO DOD DOZ HV HVD HVG HVN HVZ MD VB VBD VBG VBN VBZ")
_put("CONJ", "CC")
_put("NUM", "CD")
_put("ADP", "CS IN")
_put("NOUN", "NN NNS NP NPS NR NRS PN NN$ NNS$ NP$ NPS$ NR$ PN$ CD$")
_put("PRON", "PP$$ PPL PPLS PPO PPS PPSS WPO WPS")
_put("X", "NIL")

# "+" contractions and hyphenated pairs, as the published mapping classes them. A pronoun, noun or
# wh-word fused with an auxiliary ("he's", "John'll", "where'd") is PRT; a verb, preposition,
# adverb or adjective keeps its own class.
_CONTRACTIONS: Dict[str, str] = {}


def _put_c(universal: str, tags: str) -> None:
    for t in tags.split():
        _CONTRACTIONS[t] = universal


_put_c("PRT", """
    DT+BEZ DT+MD DTS+BEZ EX+BEZ EX+HVD EX+HVZ EX+MD
    NN+BEZ NN+HVD NN+HVZ NN+MD NNS+MD NP+BEZ NP+HVZ NP+MD NR+MD
    PN+BEZ PN+HVD PN+HVZ PN+MD PPS+BEZ PPS+HVD PPS+HVZ PPS+MD
    PPSS+BEM PPSS+BER PPSS+BER-N PPSS+BEZ PPSS+BEZ* PPSS+HV PPSS+HVD PPSS+MD PPSS+VB
    RB+BEZ RP+IN TO+VB
    WDT+BER WDT+BEZ WDT+DOD WDT+HVZ WPS+BEZ WPS+HVD WPS+HVZ WPS+MD
    WRB+BER WRB+BEZ WRB+DO WRB+DOD WRB+DOD* WRB+DOZ WRB+IN WRB+MD
""")
_put_c("VERB", "HV+TO MD+HV MD+PPSS MD+TO VB+AT VB+IN VB+JJ VB+PPO VB+RP VB+TO VB+VB VBG+TO VBN+TO")
_put_c("ADP", "IN+IN IN+PPO")
_put_c("ADV", "RB+CS RBR+CS")
_put_c("ADJ", "AP+AP JJ+JJ JJR+CS")
_put_c("NOUN", "NN+IN NN+NN")
_put_c("X", "DO+PPSS WDT+BER+PP WDT+DO+PPS")

_SUFFIXES = ("-TL", "-HL", "-NC")


def map_brown_tag(tag: str) -> str:
    """Universal tag (one of :data:`UNIVERSAL_TAGS`) of one Brown tag such as ``"nn-tl"``.

    Unknown tags map to ``"X"``, as in NLTK. Raises ``TypeError`` if ``tag`` is not a string.
    """
    if not isinstance(tag, str):
        raise TypeError(f"tag must be a str, got {type(tag).__name__}")
    t = tag.upper()
    if t.startswith("FW-"):
        return "X"
    if t in _CONTRACTIONS:
        return _CONTRACTIONS[t]
    base = t
    changed = True
    while changed:
        changed = False
        for suf in _SUFFIXES:
            if base.endswith(suf) and len(base) > len(suf):
                base = base[: -len(suf)]
                changed = True
    if base in _CONTRACTIONS:
        return _CONTRACTIONS[base]
    if base in _SIMPLE:
        return _SIMPLE[base]
    if base.endswith("*") and base[:-1] in _SIMPLE:
        return _SIMPLE[base[:-1]]
    return "X"


def brown_universal_table(tags) -> Dict[str, str]:
    """``{tag: universal}`` for an iterable of Brown tags (e.g. all 472 tags of the corpus)."""
    return {t: map_brown_tag(t) for t in tags}
