"""The sandbox's sample background worker (a "pillow"): a heartbeat every second."""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
running = True


def stop(signum, frame):
    global running
    running = False


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"worker started from {HERE} (pid {os.getpid()})", flush=True)
    next_beat = 0
    while running:
        if time.monotonic() >= next_beat:
            print(f"heartbeat {time.time():.0f} from {HERE}", flush=True)
            next_beat = time.monotonic() + 1
        time.sleep(0.1)  # short naps: a stop request is answered within 0.1 s
    print("worker stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
