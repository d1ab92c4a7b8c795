"""Built-in task presets: rules and example prompts a fleet can route by without writing its own.

A task named like a preset (or with ``preset: NAME``) gets that preset's rules and examples in addition to
its own ``match``. Rules are regular expressions with a weight: the evidence (roughly log-odds) one match adds
for the task. They look for signals that hold across prompt collections — code syntax and language names,
equations and quantities, imperative creative verbs — rather than topics, which is what nearest-example
methods end up learning. The examples are short generic prompts written for this file; the classifier embeds
them once at build time.

Preset regexes are written in lower case and run on the lower-cased prompt (faster than ``re.IGNORECASE``),
except ``case_sensitive`` ones, which run on the prompt as written. ``needles`` gate a regex: it only runs
when one of them occurs in the lower-cased prompt (a substring test costs far less than a regex scan).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    """One signal: ``weight`` evidence per match of ``regex``, counted at most ``cap`` times.

    ``name`` is what the classification's reason shows (``pattern:NAME``, or ``keyword:WORD`` for keywords).
    """

    name: str
    regex: str
    weight: float
    cap: int = 1
    keyword: bool = False
    case_sensitive: bool = False
    needles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    description: str
    rules: tuple[Rule, ...]
    examples: tuple[str, ...]


def words(weight: float, terms: str) -> tuple[Rule, ...]:
    """Keyword rules from ``a|b|c``: each term matches as a whole word or phrase, case-insensitively."""
    return tuple(Rule(term, word_regex(term), weight, keyword=True) for term in terms.split("|"))


def any_of(needles: str) -> tuple[str, ...]:
    """Needles from ``a|b|c`` (kept on one line: the lists are data, not code)."""
    return tuple(needles.split("|"))


def word_regex(term: str) -> str:
    """A regex matching ``term`` (lower-cased) as a whole word: no word character right before or after."""
    escaped = re.escape(term.lower())
    left = r"\b" if term[:1].isalnum() else r"(?<!\w)"
    right = r"\b" if term[-1:].isalnum() else r"(?!\w)"
    return left + escaped + right


_CREATIVE_FORMS = (
    r"poem|poetry|story|stories|short story|essay|letter|e-?mail|blog(?: post)?|article|speech|song|lyrics|"
    r"haiku|sonnet|limerick|novel|screenplay|dialogue|narrative|tale|fable|ballad|verses?|slogan|tagline|"
    r"advertisement|ad copy|jingle|product description|cover letter|review|toast|eulogy|press release|"
    r"tweet|caption|monologue|rap|obituary|biography|bio|anecdote|riddle|joke|scene|chapter|plot|"
    r"social media post|newsletter|invitation|description of|piece|report|card|personal statement|"
    r"(?:business|lesson|marketing) plan|(?:video|podcast|movie|film|play|radio) script|script for|"
    r"letter of recommendation|recommendation letter|thank-you note|note|message|profile|pitch"
)
_CREATIVE_VERBS = (
    "write",
    "compose",
    "draft",
    "create",
    "craft",
    "pen",
    "generate",
    "tell",
    "come up",
    "structure",
)

CODE = Preset(
    name="code",
    description="Writing, explaining, reviewing or debugging source code.",
    rules=(
        Rule("code-fence", r"```", 2.5, needles=("```",)),
        Rule(
            "code-request",
            r"\b(?:write|implement|create|code|build|fix|debug|refactor|optimi[sz]e)\b[^.?!\n]{0,40}"
            r"\b(?:function|program|class|method|module|query|regex|api|endpoint|unit tests?|algorithm)\b",
            2.5,
            needles=("write", "implement", "create", "code", "build", "fix", "debug", "refactor", "optimi"),
        ),
        Rule(
            "declaration",
            r"\bdef \w+\s*\(|\bfunction\s*\w*\s*\(|\bclass \w+\s*[:({]|"
            r"\bpublic (?:static )?(?:void|class|int|string|boolean|final|static)\b|"
            r"#include\s*<|^\s*import [\w.]+|\bfrom [\w.]+ import\b|console\.log|system\.out|\bprintf?\(|"
            r"\bconst \w+\s*=|\blet \w+\s*=|\bvar \w+\s*=|\bint main\b|\bfn \w+\(|\bfunc \w+\(",
            2.5,
            needles=any_of(
                "def |function|class |public |#include|import |console.|system.out|print|const |let |var |"
                "int main|fn |func "
            ),
        ),
        Rule(
            "call-syntax",
            r"\b[A-Za-z_]\w*(?:_\w+|[a-z][A-Z]\w*)\s*\(",
            1.5,
            case_sensitive=True,
            needles=("(",),
        ),
        Rule("snake-case", r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b", 0.8, case_sensitive=True, needles=("_",)),
        Rule("camel-case", r"\b[a-z]+[A-Z][a-z]+[A-Za-z]*\b", 0.8, case_sensitive=True),
        Rule(
            "operator",
            r"==|!=|=>|\+\+|&&|\|\||::|\+=|\[\d*:\d*\]|;\s*$",
            1.0,
            needles=("=", "+", "&", "|", "::", "[", ";"),
        ),
        Rule(
            "list-literal",
            r"\[\s*-?\d+(?:\s*,\s*-?\d+){2,}\s*\]|\[\s*(['\"])\w*\1(?:\s*,\s*(['\"])\w*\2)+\s*\]",
            1.0,
            needles=("[",),
        ),
        Rule(
            "c-language",
            r"\b(?:in|use|using|with|written in) C\b(?![+#])",
            2.0,
            case_sensitive=True,
            needles=(" c",),
        ),
        Rule(
            "keyword-literal",
            r"\bassert\b|\breturn\b|\bnull\b|\bNone\b|\bTrue\b|\bFalse\b",
            1.0,
            case_sensitive=True,
            needles=("assert", "return", "null", "none", "true", "false"),
        ),
        Rule(
            "file-extension",
            r"\w\.(?:py|js|ts|tsx|java|cpp|cc|rs|go|rb|php|cs|sh|sql|ipynb|html|css|jsx|kt)\b",
            1.0,
            needles=(".",),
        ),
        Rule(
            "error-name",
            r"\b[A-Z]\w*(?:Error|Exception)\b",
            1.5,
            case_sensitive=True,
            needles=("error", "exception"),
        ),
        Rule(
            "error-trace",
            r"\btraceback\b|\bstack ?trace\b|\bsegmentation fault\b|\bcore dumped\b",
            1.5,
            needles=("traceback", "stack", "segmentation", "core dumped"),
        ),
        *words(
            2.0,
            "python|javascript|typescript|java|c++|c#|golang|kotlin|scala|php|ruby|perl|haskell|rust|sql|html|"
            "css|bash|shell script|powershell|node.js|react|django|flask|pandas|numpy|regex|"
            "regular expression|"
            "matlab|jquery|vue|angular|spring boot|c language|swift code|dockerfile|kubernetes",
        ),
        *words(
            1.0,
            "function|functions|method|algorithm|compile|compiler|debug|bug|code|coding|programming|program|"
            "script|snippet|variable|loop|recursion|recursive|array|arrays|boolean|integer|integers|string|"
            "strings|library|framework|api|database|query|refactor|runtime|syntax|data structure|linked list|"
            "binary tree|hash map|dictionary|tuple|tuples|time complexity|unit test|implement|implementation|"
            "source code|git|json|xml|csv|parse|parser|class|object-oriented|constructor|exception|"
            "input|output|"
            "return|returns|sorting|sort|list|lists|element|elements|index|substring|binary|pointer|thread|async|"
            "server|backend|frontend|web page|app",
        ),
    ),
    examples=(
        "Write a Python function that merges two sorted lists into one sorted list.",
        "Why does this JavaScript code print undefined instead of the array length?",
        "Fix the bug in my C++ loop, it never terminates.",
        "Implement a binary search tree with insert and delete in Java.",
        "How do I reverse a string in Go?",
        "Write a SQL query that returns the ten customers with the highest total order value.",
        "Refactor this class so that it uses dependency injection.",
        "What does this regular expression match: ^[a-z0-9_-]{3,16}$",
        "I get a KeyError when I access the dictionary, how do I handle missing keys?",
        "Write a bash script that renames every .txt file in a folder to .md.",
        "Explain the time complexity of quicksort and show an implementation.",
        "Create a React component that shows a list of items with a delete button.",
        "Write unit tests for a function that validates email addresses.",
        "Convert this recursive function to an iterative one.",
        "How can I read a CSV file with pandas and drop rows with missing values?",
        "def add(a, b):\n    return a - b\n# why does add(2, 3) return -1?",
        "Write a program that counts the words in a text file.",
        "How do I make an HTTP request in Rust and parse the JSON response?",
    ),
)

MATH = Preset(
    name="math",
    description="Arithmetic, word problems, algebra, calculus, probability and proofs.",
    rules=(
        Rule("number", r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w.]*\()", 0.35, cap=6),
        Rule(
            "money", r"\$\s?\d|\d\s?(?:dollars|cents|euros)\b", 0.8, needles=("$", "dollar", "cent", "euro")
        ),
        Rule("percent", r"\d\s?%|\bpercent(?:age)?\b", 0.6, needles=("%", "percent")),
        Rule("percent-of", r"\d\s?%\s+of\s+\$?\d|\bwhat(?:'s| is) \$?\d", 1.2, needles=("%", "what")),
        Rule("arithmetic", r"\d\s*[-+*/\u00d7\u00f7^]\s*\d|\d\s*=\s*\d", 1.2),
        Rule("power", r"[a-z0-9)]\s?(?:\^|\*\*)\s?\d", 1.5, needles=("^", "**")),
        Rule("linear-term", r"\d[a-z]\s*[-+=]\s*\d", 1.5),
        Rule("equation-side", r"[-+*/]\s*(?:\d+|[a-z])\s*=(?!=)", 1.5, needles=("=",)),
        Rule(
            "function-notation",
            r"\b[fgh]\([a-z]\)|(?:sin|cos|tan|log|ln|sqrt)\s*\(|\((?:sin|cos|tan|log|ln) [a-z]\)",
            1.5,
            needles=("(",),
        ),
        Rule("coordinates", r"\(\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*\)", 1.2, needles=("(",)),
        Rule("latex", r"\\(?:frac|sqrt|int|sum|cdot|pi|times|le|ge|infty|lim)\b", 1.5, needles=("\\",)),
        Rule(
            "quantity-question",
            r"\bhow (?:many|much|long|far|old|fast)\b|\bwhat (?:is|was|were) the "
            r"(?:total|sum|product|value|probability|area|average|mean|median|ratio|difference|cost|price)\b",
            1.0,
            needles=("how ", "what "),
        ),
        Rule(
            "units",
            r"\d\s?(?:km|kilometers?|miles?|meters?|cm|kg|grams?|pounds|lbs?|hours?|minutes?|days?|"
            r"weeks?|years?|liters?|gallons?|feet|inches|mph|per)\b",
            0.5,
        ),
        *words(
            1.5,
            "equation|equations|solve for|integral|derivative|polynomial|theorem|algebra|calculus|geometry|"
            "trigonometry|arithmetic|factorial|logarithm|square root|prime number|prime numbers|probability|"
            "quadratic|hypotenuse|conjecture|limit of|line segment|slope|coordinates|approaches",
        ),
        *words(
            0.8,
            "calculate|compute|solve|sum|total|fraction|ratio|percentage|average|area|perimeter|volume|radius|"
            "triangle|circle|prove|proof|matrix|vector|remainder|divisible|digits|multiply|divide|subtract|math|"
            "mathematics|mathematical|statistics|mean|median|variance|expected value|twice|half|"
            "times as many|"
            "more than|less than|altogether|in total",
        ),
    ),
    examples=(
        "Solve for x: 3x + 7 = 22.",
        "A shop sells pencils at 3 for $1. How much do 27 pencils cost?",
        "What is the derivative of x^3 * sin(x)?",
        "A car travels 150 km in 2.5 hours. What is its average speed?",
        "Find all prime numbers between 50 and 80.",
        "If a box holds 12 eggs and Maria has 5 boxes with 7 broken eggs, how many good eggs does she have?",
        "Compute the integral of 1/(1+x^2) from 0 to 1.",
        "What is the probability of rolling two sixes with two dice?",
        "Prove that the square root of 2 is irrational.",
        "A rectangle has a perimeter of 40 cm and a length of 12 cm. What is its area?",
        "Tom is twice as old as his sister, who is 4 years older than their cousin aged 6. How old is Tom?",
        "Simplify (2x^2 - 8) / (x - 2).",
        "What is 15% of 240?",
        "Solve the system: 2x + y = 10 and x - y = 2.",
        "A recipe needs 3 cups of flour for 24 cookies. How much flour is needed for 40 cookies?",
        "Find the sum of the first 100 positive integers.",
        "What is the remainder when 2^100 is divided by 7?",
        "Each worker earns $18 an hour and works 7 hours a day. How much do 4 workers earn in 5 days?",
    ),
)

WRITING = Preset(
    name="writing",
    description="Creative and professional writing, role-play, editing and rewriting text.",
    rules=(
        Rule(
            "creative-request",
            r"\b(?:write|compose|draft|create|craft|pen|generate|tell|come up with|structure)\b"
            r"[^.?!\n]{0,60}\b(?:" + _CREATIVE_FORMS + r")s?\b",
            2.5,
            needles=_CREATIVE_VERBS,
        ),
        Rule(
            "role-play",
            r"\b(?:pretend|imagine|act|role-?play)\b[^.?!\n]{0,30}\b(?:you are|you're|as|to be|yourself)\b|"
            r"^\s*you are (?:an?|the) [\w -]{2,80}(?:\.|,)\s|^\s*as an? [\w -]{2,40},|"
            r"\bif you were (?:an?|the) \w+|"
            r"\byourself as (?:an?|the)\b|\bin character\b",
            2.0,
            needles=any_of("pretend|imagine|act|role|you are|as a|if you were|yourself as|character"),
        ),
        Rule(
            "role-play-person",
            r"^\s*[Aa]s (?:[A-Z][a-z]+ )+?(?:[A-Z][a-z]+),",
            2.0,
            case_sensitive=True,
            needles=("as ",),
        ),
        Rule(
            "imperative-write",
            r"^\s*(?:please\s+)?(?:write|compose|draft|pen)\b",
            1.5,
            needles=("write", "compose", "draft", "pen"),
        ),
        Rule(
            "edit-request",
            r"\b(?:rewrite|rephrase|paraphrase|proofread|polish|edit|revise|reword)\b",
            1.5,
            needles=("rewrite", "rephrase", "paraphrase", "proofread", "polish", "edit", "revise", "reword"),
        ),
        Rule(
            "style",
            r"\bin the style of\b|\bfrom the (?:perspective|point of view) of\b|\bfirst[- ]person\b|"
            r"\b(?:persuasive|catchy|vivid|heartfelt|humorous|witty|poetic|formal|informal) \w+|\btone\b",
            1.0,
            needles=any_of(
                "style|perspective|point of view|person|persuasive|catchy|vivid|heartfelt|humorous|witty|"
                "poetic|formal|tone"
            ),
        ),
        Rule(
            "length", r"\b\d+[- ]words?\b|\bword count\b|\bparagraphs?\b", 0.6, needles=("word", "paragraph")
        ),
        *words(
            1.0,
            "poem|poetry|story|short story|essay|novel|fiction|character|characters|plot|narrative|"
            "rhyme|rhymes|"
            "stanza|protagonist|villain|storyline|fantasy|screenplay|lyrics|sonnet|haiku|limerick|creative|"
            "creatively|imaginative|blog post|cover letter|speech|letter|email|slogan|persuasive|audience|"
            "headline|pirate|superhero|medieval|wizard|dragon|detective|soliloquy",
        ),
        *words(0.8, "literature|literary|shakespeare|shakespearean|poet|symbolism|metaphor"),
    ),
    examples=(
        "Write a short poem about the sea at night.",
        "Compose a heartfelt letter to a friend who moved abroad.",
        "Draft a persuasive blog post about why cities should plant more trees.",
        "Write a story about a robot who learns to paint.",
        "Pretend you are a medieval knight and describe your morning.",
        "Rewrite this paragraph in a more formal tone.",
        "Write a catchy slogan for a new brand of sparkling water.",
        "Compose a haiku about autumn leaves.",
        "Write a cover letter for a junior graphic designer position.",
        "Create a dialogue between a detective and a nervous witness.",
        "Write the opening scene of a fantasy novel set in a floating city.",
        "Proofread and improve the flow of my essay introduction.",
        "Imagine you are a tour guide on Mars and welcome your visitors.",
        "Write a wedding toast for my best friend.",
        "Write a product description for a handmade leather wallet.",
        "Compose song lyrics about missing home.",
        "As a pirate captain, how would you rally your crew before a storm?",
        "Write a 300-word essay on the importance of reading.",
    ),
)

SUMMARIZATION = Preset(
    name="summarization",
    description="Condensing a given text: summaries, key points, TL;DRs.",
    rules=(
        Rule(
            "summary-request",
            r"\b(?:summari[sz]e|summary|tl;?dr|condense|recap|key (?:points|takeaways)|"
            r"main (?:points|ideas)|gist|in (?:one|two|three|\d+) (?:sentences?|bullet points?|lines?))\b",
            2.5,
            needles=("summar", "tl", "condense", "recap", "key ", "main ", "gist", "in "),
        ),
        *words(1.0, "shorten|brief overview|abstract|outline|bullet points|highlights"),
    ),
    examples=(
        "Summarize the following article in three sentences.",
        "Give me the key points of this meeting transcript.",
        "TL;DR of this email thread, please.",
        "Condense this report into a one-paragraph executive summary.",
        "What are the main ideas of the text below?",
        "Write a short abstract for this research paper.",
        "Summarize this chapter for a ten-year-old.",
        "List the main takeaways from this podcast transcript in bullet points.",
    ),
)

EXTRACTION = Preset(
    name="extraction",
    description="Pulling structured data out of text: entities, fields, tables, JSON.",
    rules=(
        Rule(
            "extract-request",
            r"\b(?:extract|pull out|identify all|find all|list all|get all)\b[^.?!\n]{0,40}"
            r"\b(?:names?|dates?|emails?|addresses|phone numbers?|entities|fields|values|amounts|prices|"
            r"skills|keywords|products|companies|people|locations)\b",
            2.5,
            needles=("extract", "pull out", " all"),
        ),
        Rule(
            "structured-output",
            r"\b(?:as|in|into|to) (?:json|a json object|a table|csv|yaml|key-value pairs)\b",
            1.5,
            needles=("json", "table", "csv", "yaml", "key-value"),
        ),
        *words(1.5, "extract|named entities|entity extraction|parse the|structured data"),
    ),
    examples=(
        "Extract all the dates and amounts from this invoice.",
        "Pull out the names of every person mentioned in the text below.",
        "Return the product name, price and color from this listing as JSON.",
        "Find all email addresses and phone numbers in this document.",
        "List all the companies and their headquarters mentioned in the article.",
        "Extract the skills from this resume into a table.",
        "Identify the named entities in this sentence.",
        "Turn this receipt text into key-value pairs.",
    ),
)

TRANSLATION = Preset(
    name="translation",
    description="Translating text between languages.",
    rules=(
        Rule("translate-request", r"\btranslat(?:e|ion|ing)\b", 2.5, needles=("translat",)),
        Rule(
            "into-language",
            r"\b(?:into|to|in) (?:english|french|spanish|german|italian|portuguese|dutch|russian|chinese|"
            r"mandarin|"
            r"japanese|korean|arabic|hindi|turkish|polish|swedish|greek|hebrew|vietnamese|thai|indonesian|"
            r"ukrainian|czech)\b",
            1.5,
        ),
        *words(1.0, "how do you say|what does this mean in|in my language|native speaker"),
    ),
    examples=(
        "Translate this paragraph into French.",
        "How do you say 'good morning' in Japanese?",
        "Translate the following email from German to English.",
        "What is the Spanish translation of 'I would like a coffee, please'?",
        "Render this poem in Italian while keeping the rhyme.",
        "Translate these product names to Korean.",
        "Can you translate this sentence into Portuguese?",
        "Give me the English meaning of this Chinese phrase.",
    ),
)

CHAT = Preset(
    name="chat",
    description="General conversation, questions, explanations and advice: the usual default task.",
    rules=(
        Rule("greeting", r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening)|thanks|thank you)\b", 1.5),
        Rule(
            "open-question",
            r"^\s*(?:what|why|who|where|when|which|how|is|are|can|should|do|does)\b[^?]{0,200}\?",
            0.5,
            needles=("?",),
        ),
        *words(
            0.6,
            "explain|advice|recommend|opinion|pros and cons|difference between|history of|tips|"
            "what do you think|how are you|tell me about|impact|effects|benefits|causes|ethical|society|"
            "health|culture|why do|why is",
        ),
    ),
    examples=(
        "Hi! How are you today?",
        "What are some good tips for sleeping better?",
        "Explain how vaccines train the immune system.",
        "What is the difference between weather and climate?",
        "Who was the first person to reach the South Pole?",
        "Can you recommend a few books about ancient Rome?",
        "What are the pros and cons of working from home?",
        "Why is the sky blue?",
        "How do I stay motivated when learning a new language?",
        "What would happen if the moon disappeared?",
        "What are the main causes of inflation?",
        "Is it ethical to eat meat?",
        "How does the stock market work?",
        "What should I pack for a week of hiking in the Alps?",
        "Tell me about the history of the printing press.",
        "What are the health benefits of green tea?",
    ),
)

PRESETS: dict[str, Preset] = {
    p.name: p for p in (CODE, MATH, WRITING, SUMMARIZATION, EXTRACTION, TRANSLATION, CHAT)
}
"""Built-in presets by name."""


def get(name: str) -> Preset | None:
    """The preset called ``name``, or None."""
    return PRESETS.get(name)
