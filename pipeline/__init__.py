"""zse.pipeline"""
