"""The paper's scores the report puts beside a sweep's."""

# Paper Table 1's MOPO column (mean, std; from MOPO's paper), where it has one.
PAPER_MOPO = {
    "halfcheetah-random": (31.9, 2.8), "hopper-random": (13.3, 1.6),
    "walker2d-random": (13.0, 2.6), "halfcheetah-medium": (40.2, 2.7),
    "hopper-medium": (26.5, 3.7), "walker2d-medium": (14.0, 10.1),
    "halfcheetah-medium-expert": (57.9, 24.8), "hopper-medium-expert": (51.7, 42.9),
    "walker2d-medium-expert": (55.0, 19.1), "halfcheetah-mixed": (54.0, 2.6),
    "hopper-mixed": (92.5, 6.3), "walker2d-mixed": (42.7, 8.3),
}
# Paper Table 1 (AWAC, AWAC+MB2PO), D4RL datasets, 4 seeds: mean, std.
PAPER_TABLE_1 = {
    "halfcheetah-random": ((18.8, 1.5), (25.5, 1.1)),
    "hopper-random": ((11.2, 0.1), (11.4, 0.1)),
    "walker2d-random": ((1.4, 3.0), (0.2, 2.3)),
    "halfcheetah-medium": ((40.9, 0.3), (40.7, 0.2)),
    "hopper-medium": ((35.0, 3.9), (55.7, 14.6)),
    "walker2d-medium": ((74.3, 1.6), (80.4, 0.9)),
    "halfcheetah-expert": ((106.7, 0.6), (105.1, 1.3)),
    "hopper-expert": ((108.1, 3.8), (105.5, 10.5)),
    "walker2d-expert": ((100.5, 12.3), (107.4, 1.1)),
    "halfcheetah-medium-expert": ((104.7, 1.6), (104.8, 1.1)),
    "hopper-medium-expert": ((75.1, 15.9), (79.1, 13.5)),
    "walker2d-medium-expert": ((81.8, 18.9), (86.2, 35.5)),
    "halfcheetah-mixed": ((42.3, 0.3), (55.6, 0.6)),
    "hopper-mixed": ((30.1, 0.9), (72.6, 25.5)),
    "walker2d-mixed": ((16.9, 1.7), (61.9, 8.2)),
}
