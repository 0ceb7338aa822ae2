"""attnviz: see attention in real transformers, and spend it on a budget.

The package holds all logic (no Streamlit here): models, the attention kernel,
budget policies, quality and compute measurements, and the command line.
"""

__version__ = "0.1.0"
