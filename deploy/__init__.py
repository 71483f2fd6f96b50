"""zse.deploy"""
