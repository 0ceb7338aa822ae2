"""attnviz: see attention in a real transformer, and spend it on a budget.

Run with ``streamlit run app.py``.  This file only sets up the page and the
navigation; each page lives in ``pages/`` and draws the shared controls itself
(see ``ui/state.py`` for why).
"""

import streamlit as st

from attnviz.hosting import keep_writes_in_cache
from attnviz.plugins import PluginError, load_plugins
from ui.memory import release_free_memory

keep_writes_in_cache()  # on a public server every library's cache goes under attnviz's cache folder

st.set_page_config(page_title="attnviz: the economics of attention", page_icon="🔦", layout="wide")
# Tabs wrap onto a second line rather than hide behind a scroll arrow (Explore's six at 1024 px, Inside's two on a
# phone); on a phone plotly's toolbar would lie over the chart's title, and pinching zooms there anyway. A
# multiselect's chips wrap too: in one scrolling row a phone showed 3 of the Frontier's 6 policies, hiding the rest.
st.html("""<style>
[data-testid="stTabs"] [role="tablist"] {flex-wrap: wrap; row-gap: 0.25rem;}
[data-testid="stMultiSelectTagsContainer"] {flex-wrap: wrap; overflow: visible !important; row-gap: 0.25rem;}
div:has(> [data-testid="stMultiSelectTagsContainer"]) {max-height: none !important;}
@media (max-width: 640px) {.js-plotly-plot .modebar-container {display: none !important;}}
</style>""")

try:
    load_plugins()  # the user's own policies (ATTNVIZ_PLUGINS); imported once, later runs find them loaded
except PluginError as exc:
    st.error(f"{exc}. The app runs without it.")

PAGES = [
    st.Page("pages/start.py", title="Attention in one minute", icon="🔦", default=True),
    st.Page("pages/explore.py", title="Explore attention", icon="🔍"),
    st.Page("pages/budget.py", title="Spend a budget", icon="✂️"),
    st.Page("pages/frontier.py", title="Quality vs compute", icon="📈"),
    st.Page("pages/spend.py", title="Spend one budget", icon="⚖️"),
    st.Page("pages/generate.py", title="Generate text", icon="✍️"),
    st.Page("pages/compress.py", title="Compress the cache", icon="🗜️"),
    st.Page("pages/inside.py", title="Inside one attention head", icon="🧮"),
    st.Page("pages/methods.py", title="Methods and formulas", icon="📚"),
]

st.navigation(PAGES).run()
release_free_memory()  # after every run: see ui/memory.py
