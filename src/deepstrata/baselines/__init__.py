"""Classical scikit-learn baselines fitted on exactly a recipe's split."""
