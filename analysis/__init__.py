"""Rebuild the papers' figures and tables from a sweep's Parquet files alone."""
from analysis.load import load_epochs, load_trials
from analysis.tables import markdown_table, trials_table
from analysis.tradeoff import LogisticFit, fit_logistic, plot_tradeoff

__all__ = ["LogisticFit", "fit_logistic", "load_epochs", "load_trials", "markdown_table", "plot_tradeoff",
           "trials_table"]
