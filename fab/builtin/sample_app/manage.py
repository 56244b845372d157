"""The sample app's management commands (run with `fab <env> manage:"<command>"`).

    check          print what this release is, exit 0
    echo WORDS...  print the words, one per line
    fail [CODE]    exit with CODE (default 1)
"""
import os
import sys

HERE = os.path.dirname(os.path.realpath(__file__))


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    command, args = argv[0], argv[1:]
    if command == "check":
        with open(os.path.join(HERE, "REVISION")) as handle:
            print(f"release {HERE} at {handle.read().strip()}: ok")
        return 0
    if command == "echo":
        for word in args:
            print(word)
        return 0
    if command == "fail":
        code = int(args[0]) if args else 1
        print(f"failing with exit code {code}", file=sys.stderr)
        return code
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
