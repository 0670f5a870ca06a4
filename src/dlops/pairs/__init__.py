"""A model entry of params.yaml (one task x family pair) as the stages run it: the entry with its
search's best values (entry.py), what it trains on (setup.py), its recorded training run (training.py)
and its hyperparameter study (search.py)."""
