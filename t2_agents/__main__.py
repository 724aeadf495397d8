"""``python -m t2_agents`` runs the ``t2`` command."""

from t2_agents.cli import main

main()
