"""zse.models.metrics"""
