"""The Streamlit layer's shared helpers (controls, caches, messages).

Kept outside ``attnviz/``, which holds all the logic and imports no Streamlit.
Pages import from here and only arrange widgets and figures.
"""
