"""The INT8 layout, whatever the backend: calibration images (:mod:`.calibration`), the layout
rules applied to a network (E10 rescaling, E11 copy negation, R24 ReLU pairs), its float
simulation, its refinement, and the one decision rule that picks a layout (:mod:`.decision`)."""
