"""Always the ordinary choice: the run a stock loop on an idle machine makes."""


class OrdinarySource:
    def choose(self, n: int, what: str) -> int:
        return 0
