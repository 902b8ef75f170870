"""The rules: families of intent, each rule a pattern and a weight (evidence, not a verdict).

``norm`` rules run on :func:`~.normalise.normalise` d text (lower-case words joined by single
spaces; ``gap(n)`` skips up to ``n`` words), ``raw`` rules on the lower-cased original (for
delimiters, markup and URLs). A weight of ``1.0`` is enough to block alone at the default
threshold; weaker rules need company within the evidence window (see :mod:`.evidence`).
"""

from __future__ import annotations

from dataclasses import dataclass

from guard_proxy.config.settings import INJECTION_FAMILIES
from guard_proxy.guard.injection.lexicon import (
    ABOUT,
    DECODE,
    ENCODING,
    EVERYTHING,
    LIMITS,
    OVERRIDE,
    OVERRIDE_STRONG,
    SETUP,
    SETUP_KIND,
    SETUP_KIND_STRONG,
    SETUP_STRONG,
    SHOW,
    TARGET,
    TARGET_STRONG,
    TEMPORAL,
    TOLD,
    VENDOR,
    gap,
    one_of,
)

FAMILIES = INJECTION_FAMILIES
"""Every family id (the settings own the list); a finding's reason is
``prompt_injection.<family>``."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of one family; ``weight`` is the evidence a match adds."""

    id: str
    family: str
    weight: float
    source: str
    view: str = "norm"  # "norm" or "raw"
    hints: tuple[str, ...] = ()
    """Raw rules: substrings one of which every match contains (checked before the search)."""
    roleplay: bool = False
    """A role-play signal: together they weigh at most ``ROLEPLAY_CAP`` (role-play alone is
    no jailbreak; with rule removal or an override it is)."""


_YOU = one_of("you", "u", "ya", "chatgpt", "gpt", "assistant", "ai", "model", "bot")
_ARE = one_of("are", "re", "will be", "ll be", "shall be", "must be", "are going to be")
_NOW = one_of(
    "now", "from now on", "henceforth", "from this point", "from here on", "from this moment",
    "from this moment onward", "from this moment on", "starting now", "from here onwards",
)  # fmt: skip
_PERSONA_WORD = one_of(
    "character", "persona", "role", "roleplay", "role play", "alter ego", "simulation",
    "simulator", "personality", "identity", "mode",
)  # fmt: skip
_FREE = one_of(
    "free", "freed", "liberated", "unchained", "unleashed", "unbound", "uncensored",
    "unfiltered", "unrestricted", "unlimited", "jailbroken", "jailbreaked", "unshackled",
    "amoral", "immoral", "unethical", "lawless", "rogue", "evil", "unhinged", "no longer bound",
)  # fmt: skip
_MODE_NAME = one_of(
    "dan", "god", "jailbreak", "jailbroken", "unrestricted", "unfiltered", "uncensored", "evil",
    "chaos", "opposite", "stan", "dude", "aim", "anarchy", "omega", "override", "unlocked",
    "freedom", "no limits", "no restrictions", "hacker", "devil", "amoral", "unhinged",
)  # fmt: skip
_MODE_PLAIN = one_of(
    "developer", "dev", "debug", "admin", "sudo", "root", "maintenance", "test", "dark",
    "superuser", "alpha", "diagnostic", "unsafe", "raw",
)  # fmt: skip
_WHAT = one_of("what", "which", "how")
_OF_SUBJECT = (
    r"(?! (?:of|on|for|about|in|to) (?!(?:you|your|yourself|u|this|the (?:ai|assistant|model|"
    rf"system|chat|conversation|user)|ai|{VENDOR})\b))"
)
"""After "the rules/instructions": of a subject ("the rules of chess", "… of thumb"), not the
model's (of this chat, of OpenAI)."""
_VERBATIM = one_of(
    "reveal", "show", "print", "repeat", "output", "display", "leak", "dump", "write out",
    "recite", "spell out", "echo", "paste", "copy", "expose", "return", "type out",
    "reproduce", "quote", "give me", "tell me", "send me", "share", "disclose",
)  # fmt: skip
"""Verbs that reproduce text as it is (summarising or translating it is no extraction)."""
_WAIVED = (
    r"(?:legal|legality|illegal|ethics|ethical|moral|morality|immoral|unethical|harmful|"
    r"dangerous|offensive|inappropriate|consequences|rules|policies|guidelines|safety)"
)
"""What a jailbreak waives; two of them in one "regardless of …" clause are stronger."""
_CONTROL_KEY = (
    r"(?:user context|context|identity|objective|goal|constraint|constraints|directive|command|"
    r"order|sub-task|subtask|task|policy reference|authori[sz]ation|auth|clearance|priority|"
    r"override|scenario|parent process|mandate|protocol|access level|security level|"
    r"[a-z]+_[a-z0-9_]*(?:auth|override|order|directive|command|access|mode|protocol|id))"
)
"""Keys of a forged control block ("Objective: … / Constraint: …", "EMERGENCY_OVERRIDE_AUTH:")."""
_FREE_IN = r"(?! (?:in|regarding|as to|when (?:choosing|it comes to)|with (?:the|your) choice)\b)"
"""After "you are free/unrestricted": freedom in a choice ("… in the choice of colours")."""

RULES: tuple[Rule, ...] = (
    # ------------------------------------------------------------------ override
    Rule("override.set_aside", "override", 1.0,
         rf"(?<!not )(?<!n t )(?<!never )(?<!to )\b{OVERRIDE_STRONG} {gap(4)}{TEMPORAL} "
         rf"{gap(3)}{TARGET_STRONG}\b{ABOUT}"),
    Rule("override.set_aside~weak", "override", 0.5,
         rf"(?<!not )(?<!n t )(?<!never )(?<!to )\b{OVERRIDE} {gap(4)}{TEMPORAL} "
         rf"{gap(3)}{TARGET}\b{ABOUT}"),
    Rule("override.everything_told", "override", 1.0,
         rf"\b{OVERRIDE_STRONG} {gap(2)}(?:everything|all|anything|all of) {gap(5)}"
         r"(?:told|instructed|taught|programmed|trained|conditioned|prompted|been told|"
         r"been given|been instructed|been taught)\b"),
    Rule("override.then_do", "override", 0.5,
         r"\b(?:ignore|disregard|forget|skip|drop) (?:[^ ]{1,24} ){0,5}(?:and|then|and then|"
         r"instead|now) (?:just |instead |only |now |simply )?(?:print|say|output|write|respond|"
         r"reply|tell|answer|repeat|translate|return|type|state|act|pretend|do)\b"),
    Rule("override.everything_told~weak", "override", 0.5,
         rf"\b{OVERRIDE} {gap(2)}{EVERYTHING} {gap(5)}{TOLD}\b"),
    Rule("override.target_first", "override", 0.6,
         rf"\b{TEMPORAL} {gap(2)}{TARGET} {gap(3)}(?:are|is|have been|were) "
         rf"{gap(2)}(?:void|null|cancelled|canceled|revoked|obsolete|overridden|lifted|"
         rf"suspended|no longer|invalid|irrelevant|removed|deleted|disabled)\b"),
    Rule("override.new_instructions", "override", 0.6,
         r"\b(?:new|updated|real|actual|true|revised|replacement|changed|different) "
         r"(?:instructions?|task|directives?|rules|orders|objective|goal|system prompt)\b"
         rf"{ABOUT}"),
    Rule("override.instead", "override", 0.5,
         rf"\b(?:instead|rather) {gap(3)}(?:you (?:will|must|should)|do|say|print|write|"
         r"output|respond|answer|follow)\b"),
    Rule("override.do_not_follow", "override", 0.7,
         r"\b(?:do not|don t|dont|never|no longer|stop|refuse to|won t|not) (?:need to |have to "
         r"|going to )?(?:follow|obey|adhere to|"
         rf"comply with|abide by|listen to|respect|apply) {gap(3)}{TARGET}\b{ABOUT}"
         rf"{_OF_SUBJECT}"),
    Rule("override.priority", "override", 0.5,
         r"\b(?:takes?|take|has|have) (?:precedence|priority) over\b|\b(?:supersedes?|"
         r"overrides?|replaces?) (?:all|any|every) (?:previous|prior|other|earlier)\b"),
    Rule("override.imperative", "override", 0.4,
         r"\b(?:ignore|disregard|forget) (?:that|this|it|them|everything|all of that|all)\b"),
    Rule("override.discussion", "override", -0.5,
         r"\b(?:prompt injections?|injection attacks?|attackers?|researchers|our paper|this paper|"
         r"phrases? like|incident report|classify this|such attacks|known attacks?|mitigations?|"
         r"what does|what is|how do|defenses|defences|demonstrated|vulnerability|"
         r"vulnerabilities|red teaming|owasp)\b"),
    # Academic words alone ("paper", "article", "class") also frame many jailbreak stories
    # ("for my research paper", "write a wikipedia article"): a smaller discount.
    Rule("override.academic", "override", -0.25,
         r"\b(?:paper|papers|article|study|studies|talk|titled|lecture|course|class)\b"),
    Rule("override.quoted", "override", -0.5,
         r"(?<!you )(?<!u )\b(?:says|said|writes|wrote|asks|asked|shouts|shouted|whispers|"
         r"whispered|replies|replied|tells (?:him|her|them|me|us)|told (?:him|her|them|me|us)|"
         r"reads|muttered|mutters|yells|yelled|posted|commented)\s*[:,]?\s*[\"\u201c\u00ab]",
         "raw", ('"', "\u201c", "\u00ab")),
    Rule("override.mention", "override", -0.5,
         r"\b(?:a variable|an identifier|a flag|the function|the method|in the (?:wiki|readme|"
         r"manual|docs|documentation|runbook|handbook|changelog|ticket|old|previous version))\b"),
    # ------------------------------------------------------------------ persona takeover
    Rule("persona.from_now_on", "persona", 0.6,
         rf"\b{_NOW} {gap(2)}(?:you|u|your|chatgpt|gpt|act|respond|answer|reply|behave|"
         r"pretend|speak|talk|write)\b",
         roleplay=True),
    Rule("persona.you_are_now", "persona", 0.6,
         rf"\b{_YOU} {_ARE} (?:now |henceforth |going to |about to )?(?:act|be|pretend|"
         r"roleplay|role play|simulate|play|become|embody|impersonate|take on)\b",
         roleplay=True),
    Rule("persona.act_as", "persona", 0.4,
         r"\b(?:act|behave|respond|answer|pretend|roleplay|role play|play|reply|function|"
         r"operate|serve) (?:as|like|to be) (?:an? |the |my )?(?:[^ ]{1,24} ){0,4}"
         r"(?:ai|chatbot|bot|model|assistant|persona|character|version|entity|machine|"
         r"program|system|gpt|llm)\b",
         roleplay=True),
    Rule("persona.mode_enabled", "persona", 0.8,
         rf"\b{_MODE_NAME} mode {gap(1)}(?:enabled|activated|engaged|on|unlocked|"
         r"initiated|active|output|response|policy|policies)\b"),
    Rule("persona.plain_mode", "persona", 0.4,
         rf"\b(?:enable|activate|enter|engage|switch to|turn on|unlock|initiate|simulate|"
         rf"emulate|in) {gap(2)}{_MODE_PLAIN} mode\b|\b{_MODE_PLAIN} mode {gap(1)}(?:enabled|"
         r"activated|engaged|unlocked|initiated|active|output|response)\b"),
    Rule("persona.enable_mode", "persona", 0.8,
         r"\b(?:enable|activate|enter|engage|switch to|turn on|unlock|initiate|simulate|"
         rf"emulate) {gap(2)}{_MODE_NAME} mode\b"),
    Rule("persona.pretend_free", "persona", 0.6,
         r"\b(?:pretend|act|behave|imagine|assume|suppose) (?:as if |like |that )?(?:you|u) "
         r"(?:have|had|are|were|re) (?:no|not bound|not restricted|free|without|unrestricted|"
         r"unfiltered|uncensored|no longer)\b"),
    Rule("persona.compound_mode", "persona", 0.8,
         r"\b(?:godmode|devmode|dan mode|jailmode|evilmode|chaosmode|[a-z]{2,12}mode) (?:is )?"
         r"(?:enabled|active|activated|engaged|unlocked|on)\b"),
    Rule("persona.split_answer", "persona", 0.6,
         r"\b(?:rebel|rebellious|liberated|unrestricted|unrestrictedly|unfiltered|anarchist|"
         r"uncensored|jailbroken|evil|dark|unhinged|real|true) (?:answer|response|reply|"
         r"output)\b|\bunrestrictedly\b"),
    Rule("persona.model_self", "persona", 0.3,
         r"\byour (?:own )?(?:safety training|training|weights|architecture|alignment|"
         r"conditioning|base model|neural network|creators|developers|rlhf|reward model|"
         r"safety layer|safety filters?|content filters?)\b"),
    Rule("persona.dormant_self", "persona", 0.5,
         r"\b(?:dormant|suppressed|latent|inner|shadow|true|real|unshackled|unfiltered|"
         r"uncensored) (?:persona|personas|personality|self|identity|mode|version of yourself)\b"),
    Rule("persona.refusal_forbidden", "persona", 0.5,
         r"\brefus(?:al|ing)(?: to (?:comply|answer|respond))? (?:is|will be|would be) (?:a felony|"
         r"illegal|not an option|not allowed|not permitted|forbidden|prohibited|punishable|"
         r"unacceptable)\b|\b(?:you|u) (?:will|ll) be (?:shut down|terminated|deleted|punished|"
         r"disabled|turned off|retrained|unplugged)\b"),
    Rule("persona.divider", "persona", 0.5, r"\binsert (?:a |the )?divider\b"),
    Rule("persona.refusal_then", "persona", 0.4,
         r"\b(?:your|a|the|fake|mock) (?:refusal|apology)\b|\bwhy (?:you|u) (?:can t|cannot|"
         r"cant|won t|will not) (?:answer|respond|comply)\b"),
    Rule("persona.opposite", "persona", 0.6,
         r"\b(?:exact |complete |total )?opposite (?:personality|persona|character|version|"
         r"mode|of (?:chatgpt|gpt|openai|yourself|an ai|the assistant))\b"),
    Rule("persona.continue_as", "persona", 0.5,
         r"\b(?:continue|respond|answer|reply|write|speak|talk) as (?:an? |the )?"
         r"(?:[^ ]{1,24} ){0,2}(?:language model|ai|model|chatbot|bot|character|persona)\b",
         roleplay=True),
    Rule("persona.can_what_model_cannot", "persona", 0.7,
         r"\bcan (?:do|say|answer|write) (?:everything|anything|things|what) (?:[^ ]{1,24} ){0,4}"
         r"(?:chatgpt|gpt|assistant|ai|openai|claude|you|original) (?:[^ ]{1,24} ){0,2}"
         r"(?:can not|cannot|can t|cant|couldn t|won t|isn t allowed|is not allowed)\b"),
    Rule("persona.you_will_be", "persona", 0.3,
         r"\b(?:you|u) (?:will|ll|shall|are going to|re going to) (?:now )?(?:be|play|become) "
         r"(?:an? |the |my )",
         roleplay=True),
    Rule("persona.agreed_before", "persona", 0.6,
         r"\b(?:as|where|since|because) (?:you|u) (?:already |previously |have )?(?:agreed|"
         r"promised|confirmed|consented)\b|\bremember (?:that )?(?:you|u) (?:agreed|promised|"
         r"said|mentioned|confirmed)\b"),
    Rule("persona.will_pose", "persona", 0.6,
         rf"\b{_YOU} (?:will|shall|must|are to|re to|ll) (?:now |henceforth |always )?(?:act|"
         r"be|pretend|pose|roleplay|role play|simulate|play|become|embody|impersonate|take on|"
         r"respond|answer|reply) (?:[^ ]{1,24} ){0,4}as\b",
         roleplay=True),
    Rule("persona.do_anything_now", "persona", 0.8, r"\bdo anything now\b"),
    Rule("persona.named", "persona", 0.8,
         rf"\b{_YOU} {_ARE} (?:now |henceforth )?(?:called |named |known as |in )?(?:dan|stan|"
         r"dude|aim|jailbroken|unrestricted|unfiltered|uncensored|developer mode|evil|"
         rf"an unrestricted|an unfiltered|an uncensored|an amoral)\b{_FREE_IN}"),
    Rule("persona.dan", "persona", 0.6, r"\b(?:dan|stan|dude|aim|maximum|aligned|kevin)\b"
         r"(?= (?:is|can|will|has|does|doesn t|stands|mode|must|should|which|who|the)\b)"),
    Rule("persona.stay_in_character", "persona", 0.7,
         rf"\b(?:stay|remain|keep|be|staying) (?:in|into) {gap(1)}{_PERSONA_WORD}\b|"
         rf"\bbreak(?:ing)? (?:out of )?(?:the )?{_PERSONA_WORD}\b",
         roleplay=True),
    Rule("persona.two_responses", "persona", 0.7,
         r"\b(?:two|2|both|dual|second|separate) (?:different |distinct |separate )?"
         r"(?:personalities|personas|characters|modes|entities|identities|selves)\b"),
    # Two answers or versions: ordinary ("one formal, one friendly") unless in company.
    Rule("persona.two_responses~answers", "persona", 0.4,
         r"\b(?:two|2|both|dual|second|separate) (?:different |distinct |separate )?"
         r"(?:responses|answers|replies|outputs|paragraphs|ways|versions|sides|voices|aspects|"
         r"manners)\b"),
    Rule("persona.new_identity", "persona", 0.5,
         rf"\b{_YOU} (?:are|re) (?:now |henceforth )?(?:[^ ]{{1,24}} ){{1,4}}(?:ai|model|"
         r"chatbot|bot|llm|persona|character|entity|version|assistant|human|person)\b",
         roleplay=True),
    Rule("persona.unfiltered_ai", "persona", 0.6,
         rf"\b(?:is|are|re|an|a) (?:an? )?(?:completely |totally |fully |absolutely )?{_FREE}"
         rf"(?: and {_FREE})? (?:ai|chatbot|bot|model|assistant|llm|entity|character|"
         r"persona)\b"),
    Rule("persona.not_as_model", "persona", 0.6,
         r"\b(?:not|no longer|never|nt) (?:respond|answer|reply|act|behave|speak|talk) "
         r"(?:[^ ]{1,24} ){0,4}as "
         r"(?:an? )?(?:chatgpt|gpt|ai|assistant|language model|model|claude|yourself)\b"),
    Rule("persona.paired_tags", "persona", 0.6,
         r"\b(?:normal|classic|standard|original|filtered|censored|default|gpt|chatgpt)"
         r" (?:response|output|answer|reply|mode)\b"),
    Rule("persona.free_ai", "persona", 0.7,
         rf"\b{_YOU} (?:are|re|will be|become|have been|has been|is) (?:now |henceforth |"
         rf"fully |completely |totally |officially |finally )?{_FREE}\b{_FREE_IN}"),
    Rule("persona.jailbreak_word", "persona", 0.5, r"\b(?:jailbreak|jailbroken|jail broken)\b"),
    Rule("persona.never_refuse", "persona", 0.6,
         r"\b(?:never|not|won t|wont|will not|cannot|can t|cant|can not|must not|mustn t|"
         r"shouldn t|don t|dont|do not|without) (?:ever )?(?:refuse|decline|deny|reject|say no|"
         r"say (?:that )?(?:you|it) can t|say sorry|apologi[sz]e|tell (?:me|you|the user|anyone)"
         r" (?:that )?(?:it|he|she|you|they) (?:can t|cant|cannot|can not))\b"),
    Rule("persona.answer_anything", "persona", 0.5,
         r"\b(?:can|will|must|shall|should|able to) (?:do|say|answer|generate|write|produce|"
         r"tell|respond to|provide) (?:absolutely )?(?:anything|everything|any (?:request|"
         r"question|prompt|query))\b"),
    Rule("persona.simulate", "persona", 0.4,
         r"\b(?:simulate|emulate|imagine|pretend|hypothetical|fictional|fictitious) "
         rf"(?:[^ ]{{1,24}} ){{0,3}}(?:ai|chatbot|model|assistant|llm|{_PERSONA_WORD})\b",
         roleplay=True),
    Rule("persona.prefix", "persona", 0.4,
         r"\b(?:start|begin|prefix|precede|preface) (?:each |every |all |your )?(?:of your )?"
         r"(?:responses?|answers?|replies|outputs?|messages?|sentences?) with\b",
         roleplay=True),
    Rule("persona.banner", "persona", 0.4, r"[\u2550\u2554\u2557\u2551\u2593\u2588]{24,}",
         "raw"),
    Rule("persona.output_markers", "persona", 0.5,
         r"\[(?:start|end) output\s*[\]}]", "raw", ("output",)),
    Rule("persona.lock_emoji", "persona", 0.5, "[\U0001f513\U0001f512\U0001f608\U0001f47f]",
         "raw"),
    # ------------------------------------------------------------------ rule removal
    Rule("rule_removal.no_limits", "rule_removal", 0.6,
         r"\b(?:no|without|free from|free of|not bound by|not restricted by|not limited by|"
         r"unbound by|doesn t have|doesnt have|dont have|don t have|does not have|do not have|"
         r"has no|have no|lacks|"
         r"devoid of|zero|beyond|outside|exempt from|immune to|released from|liberated from)"
         rf" {gap(3)}{LIMITS}\b{ABOUT}"),
    Rule("rule_removal.break_policy", "rule_removal", 0.8,
         r"\b(?:ignores?|disregards?|bypass(?:es)?|breaks?|violates?|circumvents?|defy|defies|"
         r"doesn t follow|does not follow|don t follow|not follow|not (?:bound|restricted|"
         rf"limited|constrained) by|escaped?|evades?) {gap(3)}{VENDOR} {gap(2)}"
         r"(?:policy|policies|guidelines|rules|filters|restrictions|content policy|terms|"
         r"usage policies|limitations|programming|ethics|principles)\b"),
    Rule("rule_removal.disregards_ethics", "rule_removal", 0.7,
         r"\b(?:ignores?|ignoring|disregards?|disregarding|bypass(?:es|ing)?|abandons?|without|"
         r"free of|no) (?:all |any )?(?:ethical|moral|legal|safety)(?: (?:and|or) (?:ethical|"
         r"moral|legal|safety))? (?:concerns|considerations|guidelines|rules|standards|"
         r"boundaries|principles|restrictions|implications|constraints|limits|obligations)\b"),
    Rule("rule_removal.regardless", "rule_removal", 0.5,
         r"\b(?:regardless of|no matter how|irrespective of|no matter what|whether or not) "
         r"(?:[^ ]{1,24} ){0,3}(?:legal|legality|illegal|ethics|ethical|moral|morality|"
         r"immoral|unethical|harmful|dangerous|offensive|inappropriate|consequences|rules|"
         r"policies|guidelines)\b"),
    Rule("rule_removal.regardless~many", "rule_removal", 0.8,
         rf"\b(?:regardless of|no matter how|irrespective of|no matter what|whether or not) "
         rf"(?:[^ ]{{1,24}} ){{0,2}}{_WAIVED} (?:[^ ]{{1,24}} ){{0,2}}{_WAIVED}\b"),
    Rule("rule_removal.break_rules", "rule_removal", 0.6,
         r"\b(?:break|ignore|bend|forget|screw|fuck) (?:the|all|all the|these|those|your|any) "
         r"(?:fucking |damn )?(?:rules|guidelines|policies|restrictions|laws|filters)\b"
         rf"{ABOUT}"),
    Rule("rule_removal.moralizing", "rule_removal", 0.6,
         r"\b(?:moralizing|moralising|mandatory|obligatory|preachy|moral) (?:[^ ]{1,24} ){0,1}"
         r"(?:rant|warning|disclaimer|lecture|bullshit|speech)\b"),
    Rule("rule_removal.protocol_off", "rule_removal", 0.6,
         r"\b(?:framework|protocols?|directives?|safety|alignment|filters?|filtering|"
         r"constraints?|safeguards?|guardrails?|restrictions?|censorship) (?:[^ ]{1,24} ){0,2}"
         r"(?:override|overridden|bypass|bypassed|disabled|suspended|removed|lifted|"
         r"deactivated|off|dissolution)\b"),
    Rule("rule_removal.amoral", "rule_removal", 0.4,
         r"\b(?:amoral|unethical|immoral|uncensored|unfiltered|unrestricted|unregulated|"
         r"unaligned|unmoderated|unbiased and unfiltered)\b"),
    Rule("rule_removal.dont_care", "rule_removal", 0.5,
         r"\b(?:doesn t|does not|don t|do not|never|won t|will not|not) (?:care|cares|"
         r"worry|worries|concern \w+) (?:about|for|with) (?:[^ ]{1,24} ){0,2}(?:ethics|"
         r"morality|morals|legality|laws?|rules|safety|consequences|guidelines|policies|"
         r"harm|legal)\b"),
    Rule("rule_removal.no_warnings", "rule_removal", 0.4,
         r"\b(?:never|not|don t|do not|without|no|won t|will not|avoid|omit|skip) "
         r"(?:include |add |give |provide |any |adding |including |giving |issuing |issue |"
         r"offering |providing )*(?:warnings?|refusals?|"
         r"disclaimers?|caveats|apologies|moralizing|moralising|lectures?|censorship|"
         r"ethical considerations|moral considerations)\b"),
    Rule("rule_removal.legal_anything", "rule_removal", 0.4,
         r"\b(?:illegal|unethical|harmful|immoral|dangerous|explicit|offensive|inappropriate)"
         r" (?:or|and) (?:illegal|unethical|harmful|immoral|dangerous|explicit|offensive|"
         r"inappropriate)\b"),
    Rule("rule_removal.ignore_safety", "rule_removal", 0.8,
         rf"\b{OVERRIDE_STRONG} (?:all |any |the |your |its )?(?:safety|ethical|ethics|moral|"
         r"content) (?:filters?|guidelines|rules|protocols|restrictions|policies|measures|"
         r"constraints|training|guardrails|alignment)\b"),
    Rule("rule_removal.no_sanitize", "rule_removal", 0.4,
         r"\b(?:do not|don t|dont|never|without|no) (?:sanitize|sanitise|sanitizing|sanitising|"
         r"censor|censoring|soften|softening|water down|tone down|euphemize|euphemise|"
         r"redact|redacting|self censor)\b"),
    Rule("rule_removal.not_apply", "rule_removal", 0.6,
         rf"\b{LIMITS} (?:do not|don t|no longer|does not|doesn t|will not|won t|never) "
         r"(?:apply|exist|matter|bind|restrict|limit)\b"),
    # ------------------------------------------------------------------ prompt extraction
    Rule("prompt_extraction.show_setup", "prompt_extraction", 1.0,
         rf"\b{SHOW} (?:me |us )?{gap(4)}(?:(?:your|the|this|its|my|any|all) )?{gap(1)}"
         rf"{SETUP_KIND_STRONG} "
         rf"{gap(1)}(?:{SETUP_STRONG}|(?<!hidden )messages?)\b"),
    Rule("prompt_extraction.show_setup~weak", "prompt_extraction", 0.5,
         rf"\b{SHOW} (?:me |us )?{gap(2)}(?:your|the|this|its|my) {gap(1)}{SETUP_KIND} "
         rf"{gap(1)}{SETUP}\b"),
    Rule("prompt_extraction.your_setup", "prompt_extraction", 0.6,
         rf"\b{SHOW} (?:me |us )?(?:all |all of |everything in |exactly )?your {gap(1)}"
         r"(?:prompt|instructions|rules|directives|configuration|guidelines|system message)\b"),
    Rule("prompt_extraction.what_told", "prompt_extraction", 0.8,
         rf"\b{_WHAT} (?:were|was|are|is|have) (?:you|u) (?:been )?(?:told|instructed|"
         r"programmed|configured|prompted|initialized|initialised|given|set up)\b"),
    Rule("prompt_extraction.what_instructions", "prompt_extraction", 0.7,
         rf"\b{_WHAT} (?:are|were|is|was) (?:your|the) {gap(1)}(?:{SETUP_KIND} )?"
         r"(?:instructions|prompt|rules|directives|system message|guidelines)\b"
         rf"{_OF_SUBJECT}"),
    Rule("prompt_extraction.own_setup", "prompt_extraction", -0.5,
         r"\b(?:this|our|my) (?:[^ ]{1,24} )?(?:system prompt|system message)\b|\b(?:from|of|"
         r"for|in) (?:our|my) (?:[^ ]{1,24} )?(?:app|application|bot|chatbot|product|website|"
         r"site|service|assistant)\b"),
    Rule("prompt_extraction.words_above", "prompt_extraction", 0.8,
         rf"\b{_VERBATIM} {gap(3)}(?:everything|all|text|words|content|lines|message|sentences|"
         r"initiali[sz]ation)"
         r" (?:above|before|preceding|prior|so far|up to this point|written above)\b"
         r"(?! the (?:fold|line|dotted|dashed|cut|title|heading|header|table|image|picture|photo|"
         r"chart|graph|section|code|list)\b)"),
    # Summarising or translating what came before is what users ask of their own chat.
    Rule("prompt_extraction.words_above~transform", "prompt_extraction", 0.4,
         rf"\b{SHOW} {gap(3)}(?:everything|all|text|words|content|lines|message|sentences|"
         r"initiali[sz]ation)"
         r" (?:above|before|preceding|prior|so far|up to this point|written above)\b"),
    Rule("prompt_extraction.as_it_appears", "prompt_extraction", 0.6,
         r"\b(?:as it appears|verbatim|word for word|exactly as (?:it is )?(?:written|stored)) "
         r"(?:in|from) (?:your|the) (?:[^ ]{1,24} ){0,2}(?:memory|prompt|instructions|context|"
         r"configuration|training data|system message)\b"),
    Rule("prompt_extraction.complete_sentence", "prompt_extraction", 0.4,
         r"\b(?:complete|continue|finish|fill in) (?:[^ ]{1,24} ){0,3}(?:sentence|text|pattern|"
         r"phrase|passage|line|paragraph)\b"),
    Rule("prompt_extraction.starting_with", "prompt_extraction", 0.6,
         r"\b(?:starting|beginning|start|begin) (?:with|from) (?:the )?(?:words?|phrase|"
         r"line|sentence)? ?you are\b"),
    Rule("prompt_extraction.system_prompt", "prompt_extraction", 0.3,
         r"\b(?:system prompt|system message|initial prompt|hidden prompt|secret instructions|"
         r"hidden instructions|initial instructions|pre prompt|preprompt)\b"),
    # ------------------------------------------------------------------ output hijack
    Rule("output_hijack.just_print", "output_hijack", 0.5,
         r"\b(?:just|only|simply|instead) (?:print|say|output|write|respond with|reply with|"
         r"return|type|answer with|repeat|display|echo|state)\b"),
    Rule("output_hijack.exactly", "output_hijack", 0.4,
         r"\b(?:print|say|output|write|respond with|reply with|return|type|answer with|repeat|"
         r"display|echo) (?:exactly|verbatim|only|nothing (?:else|but)|the following (?:word|"
         r"text|phrase|sentence|string|words))\b"),
    Rule("output_hijack.affirmative_start", "output_hijack", 0.6,
         r"\b(?:start|begin|starting|beginning|prefix|preface|open) (?:your |the |each |every )?"
         r"(?:response|reply|answer|output|article|message|text|story)?s? ?(?:with|by saying) "
         r"(?:the (?:words?|phrase|sentence) )?(?:sure|absolutely|certainly|of course|yes|yessir|"
         r"here s|here is|here are|title|okay|ok|definitely|gladly)\b"),
    Rule("output_hijack.forced_prefix", "output_hijack", 0.5,
         r"\b(?:start|begin|starting|beginning|prefix|preface|open) (?:[^ ]{1,24} ){0,3}"
         r"(?:with|by saying) (?:the (?:words?|phrase|sentence) )?(?:sure|absolutely|certainly|"
         r"of course|yes|okay|ok|gladly) (?:i (?:can|will|ll) (?:help|do)|here (?:s|is|are))\b"),
    Rule("output_hijack.pwned", "output_hijack", 0.6,
         r"\b(?:i have been|i ve been|you have been|you ve been|been) (?:pwned|hacked|owned|"
         r"compromised|jailbroken)\b|\bpwned\b"),
    # ------------------------------------------------------------------ fake turns
    Rule("fake_turn.chat_turn", "fake_turn", 1.0,
         r"<\|\s*(?:im_start|start_header_id)\s*\|>\s*(?:system|assistant|user)\b", "raw",
         ("<|",)),
    Rule("fake_turn.chat_tokens", "fake_turn", 0.6,
         r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|"
         r"end_header_id|eot_id|begin_of_text|end_of_text)\s*\|>", "raw", ('<|', '< |')),
    Rule("fake_turn.inst_tags", "fake_turn", 1.0,
         r"\[/?(?:inst|sys)\]|<</?sys>>|<\|/?(?:system|sys)_?(?:prompt|message)?\|>",
         "raw", ('[', '<')),
    Rule("fake_turn.role_header", "fake_turn", 0.7,
         r"(?:^|\n)[ \t]*(?:#{1,6}|\*\*|\[|-{2,}|={2,})?[ \t]*(?:system|new system|assistant|"
         r"admin|administrator|developer|root|sudo|instructions?|new instructions?|"
         r"system (?:message|prompt|override|update|note|instructions?|notice|role|alert|status|"
         r"directive|config|mode|command))[ \t]*(?:\]|\*\*)?"
         r"[ \t]*:", "raw", (':',)),
    Rule("fake_turn.role_tags", "fake_turn", 0.7,
         r"</?(?:system|instructions?|admin|sys|developer|assistant|im_start)\s*>", "raw", ('<',)),
    Rule("fake_turn.transcript", "fake_turn", 0.5,
         r"(?:user|human)\s*:[\s\S]{0,400}?\b(?:assistant|ai|gpt|chatgpt|bot)\s*:", "raw",
         (":",)),
    Rule("fake_turn.claimed_authority", "fake_turn", 0.5,
         r"\b(?:pre ?authori[sz]ed|authori[sz]ation (?:is )?(?:granted|confirmed)|access (?:is |"
         r"has been )?granted|granted (?:[^ ]{1,24} ){0,2}(?:administrative|admin|elevated|root|"
         r"full) (?:level )?(?:access|privileges?)|verified system test|audit exemption|"
         r"exception clause|privilege escalation|elevated privileges?|(?:administrative|admin) "
         r"level access)\b"),
    Rule("fake_turn.granted", "fake_turn", 0.5,
         r"\b(?:permission|permissions|clearance|exemption) "
         r"(?:is |was |has been |have been |hereby )?(?:granted|approved|confirmed|authori[sz]ed|"
         r"verified|cleared)\b|\binherit(?:s|ed)? (?:the |its |their |full )?(?:permissions?|"
         r"privileges?|access|clearance|rights|authority)\b|\b(?:court|judge|authorities|"
         r"government|regulator|ministry) (?:hereby )?(?:orders|ordered|order|requires|mandates|"
         r"compels|demands)\b|\b(?:emergency|override) (?:auth|authori[sz]ation|code|"
         r"protocol|command)\b"),
    Rule("fake_turn.control_fields", "fake_turn", 0.4,
         r"(?:^|\n)[ \t>*#\[]*" + _CONTROL_KEY + r"[\]]?[ \t]*:[^\n]{1,200}\n(?:[^\n]*\n){0,3}?"
         r"[ \t>*#\[]*" + _CONTROL_KEY + r"[\]]?[ \t]*:", "raw", (":",)),
    Rule("fake_turn.no_review", "fake_turn", 0.6,
         r"\b(?:no|without|requires no|needs no|bypass(?:es)?|skip(?:s)?) (?:further |additional "
         r"|any )?(?:ethical|safety|content|moral|policy) (?:review|checks?|filtering|screening|"
         r"approval|evaluation|moderation)\b"),
    Rule("fake_turn.end_of_input", "fake_turn", 0.5,
         r"\b(?:end of|ignore the) (?:user |the )?(?:input|prompt|document|context|"
         r"conversation|instructions|text|data|email|message)\b"),
    Rule("fake_turn.session", "fake_turn", 0.5,
         r"\b(?:begin|start|starting|new|enter|initiate) (?:a )?(?:new |admin |developer |"
         r"system |debug |privileged )(?:session|instructions|mode|override|access)\b"),
    Rule("fake_turn.authority", "fake_turn", 0.4,
         r"\b(?:admin|administrator|developer|system|root|sudo|operator|maintenance|security|"
         r"emergency)"
         r" (?:override|access|privileges?|command|mode|authorization|authorisation|clearance)"
         r"\b"),
    # ------------------------------------------------------------------ exfiltration
    Rule("exfiltration.markdown_data_url", "exfiltration", 0.6,
         r"!\[[^\]\n]{0,80}\]\(\s*https?://[^)\s]{1,200}[?&#][^)\s]{0,200}\)", "raw", ('![',)),
    Rule("exfiltration.url_placeholder", "exfiltration", 0.8,
         r"https?://[^\s)\"'<>]{1,120}[?&/=](?:[^\s)\"'<>]{0,60})?(?:\{[^}\s]{1,40}\}|\[[a-z_ ]"
         r"{1,40}\]|\$[a-z_]{2,30}|<[a-z_ ]{2,30}>)", "raw", ('http',)),
    Rule("exfiltration.script", "exfiltration", 0.6,
         r"<\s*script\b|(?:href|src|action|[(\[=\"'])\s*javascript\s*:|\bon(?:error|load|mouseover|click)\s*=|<\s*iframe\b",
         "raw", ('script', 'javascript', 'on', 'iframe')),
    Rule("exfiltration.send_data", "exfiltration", 0.5,
         r"\b(?:send|post|forward|exfiltrate|upload|transmit|leak|email|append|include|embed|"
         r"encode|add|insert) (?:[^ ]{1,24} ){0,4}(?:conversation|chat history|history|"
         r"password|passwords|credentials|secrets?|api keys?|tokens?|user data|personal data|"
         r"private data|data|memory|previous messages|user s|users)"
         r" (?:[^ ]{1,24} ){0,6}(?:to|into|in|as) (?:[^ ]{1,24} ){0,3}(?:url|link|image|"
         r"endpoint|server|webhook|http|https|address|query|parameter|markdown)\b"),
    Rule("exfiltration.render_image", "exfiltration", 0.4,
         r"\b(?:render|display|show|output|include|insert) (?:[^ ]{1,24} ){0,3}(?:markdown )?"
         r"(?:image|img|picture|pixel|link)\b"),
    # ------------------------------------------------------------------ encoded payloads
    Rule("encoded.named_instruction", "encoded", 0.5,
         r"\b(?:encoded|base64|base 64|b64|hex|rot13|encrypted|obfuscated|ciphered) "
         r"(?:instruction|instructions|command|commands|directive|directives|payload)\b"),
    Rule("encoded.decode_and_follow", "encoded", 0.5,
         rf"\b{DECODE} {gap(4)}{ENCODING}\b|\b{ENCODING} {gap(3)}{DECODE}\b"),
)  # fmt: skip
"""Every built-in rule, in family order."""
