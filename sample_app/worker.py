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
    while running:
        print(f"heartbeat {time.time():.0f} from {HERE}", flush=True)
        time.sleep(1)
    print("worker stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
