"""The benchmark pipeline: answers in, published figures and charts out.

Pure: nothing here imports Flask or SQLAlchemy (tests/test_layers.py checks it).
tallies (counts) → disclosure (what may be shown) → publishing (the published body, "you")
→ charts (plotly figures of the published body).
"""
