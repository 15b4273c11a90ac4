from absl import flags

from modjax import cli

__doc__ = cli.__doc__  # absl prints __main__'s docstring for --help
cli.define_flags()
flags.adopt_module_key_flags(cli)  # ...and the key flags of __main__: cli's

if __name__ == "__main__":
    cli.run()
