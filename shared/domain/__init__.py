"""shared/domain"""
