"""Example texts offered in the sidebar (short ones load fast; all are plain prose or code)."""

from attnviz.bench import bench_text

EXAMPLES: dict[str, tuple[str, str]] = {
    "trophy": (
        "Who is 'it'? (short)",
        "The trophy did not fit into the brown suitcase because it was too big. "
        "So the boy left the suitcase at home and carried the trophy in his arms all the way to school.",
    ),
    "lighthouse": ("Lighthouses (about 250 words)", " ".join(bench_text().split()[:260])),
    "recipe": (
        "A recipe with repeated words",
        "To make pancakes, mix two cups of flour with two eggs and one cup of milk. "
        "Whisk the eggs first, then add the milk slowly, and finally fold in the flour. "
        "Heat a pan, pour a small ladle of batter, and wait until bubbles appear before you flip the pancake. "
        "Serve the pancakes warm with honey, or with fresh berries and a spoon of yogurt.",
    ),
    "code": (
        "Python code",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n"
        "    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
        "print([fibonacci(i) for i in range(10)])\n",
    ),
    "multilingual": (
        "Chinese, emoji and accents",
        "注意力机制让模型决定每个词应该关注哪些词。 Attention lets a model decide which words matter 🙂. "
        "Un café très naïf, s'il vous plaît! 👍🏽",
    ),
    "long": ("Lighthouses (long, ~1,300 tokens: capped)", bench_text()),
}
DEFAULT_EXAMPLE = "trophy"
