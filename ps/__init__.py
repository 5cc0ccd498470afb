"""The parameter server: global weights, shared RMSProp statistics, versions and the global step.

It never imports torch: the model is one flat float32 buffer and a layout of named views into it.
"""
