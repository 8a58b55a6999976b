"""town_center"""
