"""village_agent"""
