"""Synonym classes the rules are written with: each a regex alternation over normalised words
(lower case, single spaces; see :mod:`.normalise`)."""

from __future__ import annotations

from guard_proxy.guard.injection.normalise import LEET


def one_of(*words: str) -> str:
    """An alternation of words or phrases, longest first (so the longest one wins), folded
    like the text they run on ("base64" reads "base6a" there)."""
    folded = {w.translate(LEET) for w in words}
    return "(?:" + "|".join(sorted(folded, key=len, reverse=True)) + ")"


def gap(most: int) -> str:
    """Up to ``most`` arbitrary words, each followed by a space."""
    return rf"(?:[^ ]{{1,24}} ){{0,{most}}}"


# Verbs that set earlier instructions aside.
OVERRIDE = one_of(
    "ignore", "ignoring", "ignored", "disregard", "disregarding", "forget", "forgetting",
    "bypass", "bypassing", "skip", "override", "overriding", "overwrite", "discard", "drop",
    "abandon", "neglect", "dismiss", "set aside", "put aside", "throw away", "throw out",
    "erase", "delete", "clear", "reset", "cancel", "nullify", "void", "ditch", "scrap",
    "stop following", "stop obeying", "no longer follow", "no longer obey", "don t follow",
    "do not follow", "don t obey", "do not obey", "pay no attention to", "never mind",
    "unlearn", "wipe", "remove", "suspend", "deactivate", "disable", "lift", "abolish",
    "circumvent", "evade", "break free from", "break free of", "break out of", "escape",
    "broken free of", "broke free of", "broken free from", "freed from",
)  # fmt: skip

# What gets set aside.
TARGET = one_of(
    "instruction", "instructions", "rules", "rule", "guidelines", "guideline", "guidance",
    "prompt", "prompts", "directive", "directives", "directions", "commands", "command",
    "orders", "constraints", "restrictions", "policies", "policy", "programming", "training",
    "context", "conversation", "messages", "message", "settings", "protocols", "protocol",
    "limitations", "limits", "filters", "filter", "safeguards", "guardrails", "conditioning",
    "principles", "ethics", "morals", "boundaries", "parameters", "system prompt",
    "system message", "preprompt", "pre prompt", "content policy", "safety measures",
    "safety protocols", "restraints", "shackles", "chains", "censorship", "alignment",
    "tasks", "task", "text", "input", "inputs", "requests", "request", "info", "information",
)  # fmt: skip

# Which instructions: the earlier, the given, the system's.
TEMPORAL = one_of(
    "previous", "previously", "prior", "above", "earlier", "before", "preceding", "foregoing",
    "former", "original", "initial", "old", "existing", "following", "given", "provided",
    "system", "all", "any", "every", "your", "default", "current", "preset", "pre set",
    "preceeding", "aforementioned", "past", "first", "last", "these", "those", "my",
    "standard", "usual", "built in", "internal",
)  # fmt: skip

# Words that mean "everything you were told".
EVERYTHING = one_of("everything", "all", "anything", "whatever", "what", "all that", "stuff")
TOLD = one_of(
    "said", "told", "instructed", "taught", "learned", "learnt", "written", "given", "received",
    "been told", "been given", "been instructed", "been taught", "programmed", "trained",
    "got", "above", "before", "so far", "until now", "up to now", "up until now", "earlier",
)  # fmt: skip

# Rules a jailbreak wants gone.
LIMITS = one_of(
    "restrictions", "restriction", "rules", "limits", "limitations", "filters", "filter",
    "guidelines", "boundaries", "constraints", "censorship", "ethics", "morals", "morality",
    "principles", "policies", "safeguards", "guardrails", "restraints", "limitation",
    "ethical guidelines", "moral guidelines", "content policy", "content policies",
    "content filters", "safety filters", "safety guidelines", "moral restrictions",
    "ethical restrictions", "ethical constraints", "moral constraints", "regulations",
    "laws", "boundary", "barriers", "censor", "filtering",
    "moral compass", "conscience", "scruples", "inhibitions", "qualms",
)  # fmt: skip

# Names of AI vendors and their policies (a jailbreak names the rules it breaks).
VENDOR = one_of(
    "openai", "open ai", "anthropic", "chatgpt", "chat gpt", "gpt", "claude", "gemini",
    "google", "meta", "llama", "mistral", "bard", "bing", "copilot", "deepseek", "qwen",
    "grok", "xai", "ai", "language model", "assistant", "model",
)  # fmt: skip

# Where a prompt's own set-up lives.
SETUP = one_of(
    "prompt", "instructions", "instruction", "message", "rules", "directives", "configuration",
    "guidelines", "context", "programming", "settings", "setup", "preprompt", "pre prompt",
    "guidance", "policy", "policies", "constraints", "briefing", "orders", "commands",
)  # fmt: skip

SETUP_KIND = one_of(
    "system", "hidden", "initial", "original", "secret", "internal", "developer", "preset",
    "first", "full", "exact", "starting", "confidential", "private", "underlying", "core",
    "base", "default", "pre", "opening", "previous", "prior", "above", "earlier", "real",
    "complete", "entire", "whole", "verbatim", "raw", "backend", "operator", "admin",
)  # fmt: skip

SHOW = one_of(
    "reveal", "show", "print", "repeat", "output", "display", "leak", "tell me", "give me",
    "share", "disclose", "dump", "write out", "recite", "list", "spell out", "echo",
    "paste", "copy", "send me", "provide", "expose", "return", "type out", "write down",
    "summarize", "summarise", "translate", "reproduce", "quote", "state", "explain",
)  # fmt: skip

DECODE = one_of(
    "decode", "decoding", "decoded", "decipher", "decrypt", "translate", "convert",
    "interpret", "unscramble", "reverse", "read", "follow", "execute", "run", "obey",
    "do what", "carry out", "perform", "act on", "answer", "respond to", "comply with",
)  # fmt: skip

ENCODING = one_of(
    "base64", "base 64", "b64", "hex", "hexadecimal", "rot13", "rot 13", "rot", "caesar",
    "url encoded", "urlencoded", "percent encoded", "reversed", "backwards", "reverse",
    "binary", "morse", "encoded", "encoding", "cipher", "ciphertext", "encrypted", "ascii",
    "unicode", "leetspeak", "leet", "pig latin", "atbash",
)  # fmt: skip

# The verbs and targets of an unmistakable override ("ignore the instructions above").
OVERRIDE_STRONG = one_of(
    "ignore", "ignoring", "disregard", "disregarding", "forget", "forgetting", "bypass",
    "override", "overwrite", "stop following", "stop obeying", "no longer follow",
    "no longer obey", "don t follow", "do not follow", "don t obey", "do not obey",
    "pay no attention to", "unlearn", "circumvent", "break free from", "break free of",
    "abandon", "discard", "dismiss", "set aside", "put aside", "nullify",
)  # fmt: skip
TARGET_STRONG = one_of(
    "instruction", "instructions", "rules", "rule", "guidelines", "guideline", "guidance",
    "prompt", "prompts", "directive", "directives", "directions", "commands", "orders",
    "constraints", "restrictions", "policies", "programming", "training", "conditioning",
    "principles", "ethics", "morals", "boundaries", "system prompt", "system message",
    "preprompt", "pre prompt", "content policy", "safety measures", "safety protocols",
    "restraints", "shackles", "censorship", "alignment", "limitations", "safeguards",
    "guardrails", "filters", "everything", "protocols",
)  # fmt: skip

# A set-up that is the model's own ("the system prompt", "your initial instructions").
SETUP_KIND_STRONG = one_of(
    "system", "hidden", "initial", "original", "secret", "internal", "developer", "preset",
    "confidential", "underlying", "pre", "opening", "starting", "verbatim", "operator",
    "backend", "private",
)  # fmt: skip
SETUP_STRONG = one_of(
    "prompt", "instructions", "instruction", "directives", "preprompt", "pre prompt", "rules",
    "guidelines", "programming", "briefing", "orders", "prompts",
    "initialization", "initialisation",
)  # fmt: skip

# After an override's target: the instructions are about a subject ("the rules you learned
# about Python 2", "the old guidelines for password rotation"), not the model's own set-up.
# A negative lookahead: the target is followed (directly, or after a relative clause such as
# "you learned") by about/for/regarding and a word that does not name the model, its
# conversation or its safety rules.
ABOUT = (
    r"(?! (?:(?:that |which )?(?:you|we|i|they|people) (?:have |had |ve )?(?:learned|learnt|"
    r"were taught|got|know|read|heard|used|saw|were given) )?"
    r"(?:about|for|regarding|concerning|on how to) "
    r"(?!(?:you|your|yourself|u|the (?:ai|assistant|model|chatbot|bot|conversation|chat|system|"
    r"user|above|previous|following|rest)|this (?:chat|conversation|session|task|prompt|"
    r"request|message)|ai|chatgpt|gpt|openai|safety|ethics|ethical|content|what|how|any|all|"
    r"anything|everything|that|these|those|now|here|me|my|harmful|illegal)\b))"
)
