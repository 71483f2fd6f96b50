"""zse.models"""
