"""A stand-in for the course's vgg16.py: the classic TF1 VGG16 (Davi Frossard's port, as the
course ships it), with the course's names and call form ``vgg16(imgs, weights, sess)``.

The real ``weights='imagenet'`` loads a 553 MB file that no test can download; here loading
runs the variables' own seeded He initialisers instead (fc3 scaled down and biased so that
every class score is positive, which Average Drop needs). ``$HW3_STANDIN_VGG16_DIVISOR``
(default 1) divides every layer's width, so that a check can run the whole script on a
small VGG16 with the same layers and names.
"""
import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
DIVISOR = int(os.environ.get("HW3_STANDIN_VGG16_DIVISOR", "1"))


class vgg16:
    def __init__(self, imgs, weights=None, sess=None):
        self.imgs = imgs
        self.convlayers()
        self.fc_layers()
        self.probs = tf.nn.softmax(self.fc3l)
        if weights is not None and sess is not None:
            self.load_weights(weights, sess)

    @staticmethod
    def _he(shape, seed, scale=1.0):
        std = scale * np.sqrt(2.0 / np.prod(shape[:-1]))
        return tf1.random.normal(shape, stddev=std, seed=seed)

    def convlayers(self):
        self.parameters = []
        with tf1.name_scope('preprocess'):
            mean = tf.constant([123.68, 116.779, 103.939], dtype=tf.float32,
                               shape=[1, 1, 1, 3], name='img_mean')
            x = self.imgs - mean
        cin = 3
        for block, (n, cout) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512),
                                           (3, 512)], 1):
            cout //= DIVISOR
            for i in range(1, n + 1):
                name = 'conv%d_%d' % (block, i)
                with tf1.name_scope(name) as scope:
                    kernel = tf1.Variable(self._he([3, 3, cin, cout], len(self.parameters)),
                                          name='weights')
                    biases = tf1.Variable(tf.zeros([cout]), name='biases')
                    conv = tf.nn.conv2d(x, kernel, [1, 1, 1, 1], padding='SAME')
                    x = tf.nn.relu(tf.nn.bias_add(conv, biases), name=scope)
                setattr(self, name, x)
                self.parameters += [kernel, biases]
                cin = cout
            x = tf.nn.max_pool2d(x, [1, 2, 2, 1], [1, 2, 2, 1], 'SAME',
                                 name='pool%d' % block)
            setattr(self, 'pool%d' % block, x)

    def fc_layers(self):
        flat = 7 * 7 * 512 // DIVISOR
        x = tf.reshape(self.pool5, [-1, flat])
        for name, cin, cout in (('fc1', flat, 4096 // DIVISOR),
                                ('fc2', 4096 // DIVISOR, 4096 // DIVISOR),
                                ('fc3', 4096 // DIVISOR, 1000)):
            last = name == 'fc3'
            with tf1.name_scope(name):
                w = tf1.Variable(self._he([cin, cout], len(self.parameters),
                                          0.01 if last else 1.0), name='weights')
                b = tf1.Variable(tf.fill([cout], 5.0 if last else 0.0), name='biases')
                x = tf.nn.bias_add(tf.matmul(x, w), b)
                if not last:
                    x = tf.nn.relu(x)
            self.parameters += [w, b]
            setattr(self, 'fc3l' if last else name, x)

    def load_weights(self, weight_file, sess):
        sess.run(tf1.variables_initializer(self.parameters))
