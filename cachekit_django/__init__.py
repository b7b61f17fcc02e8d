"""Django adapter for cachekit (``CACHES`` backends, view/fragment caching, admin commands).

Not implemented yet: it arrives with the Django adapter issue. The package exists so that the
distribution's layout is stable.
"""
