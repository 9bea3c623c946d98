"""The INT8 layout, whatever the backend and whatever the network: calibration images
(:mod:`.calibration`), the compiled graph every network is laid out on (:mod:`.network_form`,
:mod:`.graph_chains`), the layout rules applied to it (E10 rescaling and E11 copy negation in
:mod:`.layout`, R24 ReLU pairs), its float simulation, its refinement, and the one decision rule
that picks a layout (:mod:`.decision`)."""
