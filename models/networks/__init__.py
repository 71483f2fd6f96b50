"""zse.models.networks"""
