"""zse.workflows"""
