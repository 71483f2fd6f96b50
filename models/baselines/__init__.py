"""zse.models.baselines"""
